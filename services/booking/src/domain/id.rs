//! Booking ids, unique across the network.
//!
//! A booking id is `BK-` + the 12-digit ledger sequence of its hold's entry + `-` + the
//! site id, e.g. `BK-000000000042-cn-huaihua-park`: the sequence makes it unique at the
//! site and the site id across the network. Site ids are `a-z`, `0-9` and `-` (see
//! `coldchain_network`), so an id is safe in URLs and command lines, and at most 79 bytes.
//!
//! Builds before this one gave `BK-` + the 12-digit sequence alone (`BK-000000000042`),
//! the same at every site; those bookings keep their ids and are found by them at the
//! site that made them. Within a site, ids sort in creation order whichever the form: the
//! sequences grow, the old ids all come before the new ones (they were made first, with
//! smaller sequences), and the digits come first in both forms.

/// The prefix of every booking id.
pub const PREFIX: &str = "BK-";

/// The id of the booking whose hold is ledger entry `sequence` at `site_id`.
pub fn booking_id(site_id: &str, sequence: u64) -> String {
    format!("{PREFIX}{sequence:012}-{site_id}")
}

/// Which site an id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdSite<'a> {
    /// `BK-` + digits: an id of a build before network-unique ids, valid only at the site
    /// that made it.
    Local,
    /// `BK-` + digits + `-` + this site id.
    Site(&'a str),
    /// Not the form of a booking id: no booking has it.
    Unknown,
}

/// The site `id` names (see the module doc).
pub fn site_of(id: &str) -> IdSite<'_> {
    let Some(rest) = id.strip_prefix(PREFIX) else {
        return IdSite::Unknown;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return IdSite::Unknown;
    }
    match rest[digits..].strip_prefix('-') {
        None if digits == rest.len() => IdSite::Local,
        Some(site) if !site.is_empty() => IdSite::Site(site),
        _ => IdSite::Unknown,
    }
}

/// True when `id`, given to the site `site_id`, names a booking of another site: it cannot
/// be here.
pub fn names_other_site<'a>(id: &'a str, site_id: &str) -> Option<&'a str> {
    match site_of(id) {
        IdSite::Site(owner) if owner != site_id => Some(owner),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
