//! Fields added at the end of stored records. Records are postcard, which has no field
//! tags: a record an earlier build wrote ends before such a field, and decoding the field
//! fails at the end of the input. These decoders read that as "absent" (the field's value
//! for records of earlier builds) instead of failing the whole record. Only for the last
//! fields of a record that is itself stored alone (never inside another record).

use coldchain_audit::Author;
use serde::{Deserialize, Deserializer};

/// The field, or its default when the record ends before it.
pub(crate) fn absent_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(T::deserialize(deserializer).unwrap_or_default())
}

/// The author, or [`Author::unknown`] when the record ends before it.
pub(crate) fn author_or_unknown<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Author, D::Error> {
    Ok(Author::deserialize(deserializer).unwrap_or_else(|_| Author::unknown()))
}
