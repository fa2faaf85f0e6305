//! Lapses: the due index, the closing of ended days, and the sweep that stores EXPIRED
//! and NO_SHOW (see the module doc of [`super`]). The background worker that calls
//! [`Bookings::sweep_due`] lives in `app`.

use coldchain_store::{KeyCodec, WriteError, WriteTx};

use super::tables::{
    self, BOOKINGS, BY_DAY, CLOSED_DAYS, DUE, FIRST_OPEN_DAY, stored_first_open_day,
};
use super::{Bookings, Refusal};
use crate::domain::{self, Booking, BookingState};

/// How many due bookings one background sweep write lapses at most.
const SWEEP_BATCH: usize = 256;

impl Bookings {
    /// The stored bookings that are due strictly before `now` (read from the tree: call
    /// under the writer lock for a consistent view).
    pub(super) fn due_before(
        &self,
        now: i64,
    ) -> impl Iterator<Item = Result<Booking, Refusal>> + '_ {
        self.store
            .scan_prefix(&DUE, &[])
            .take_while(move |entry| match entry {
                Ok(((due, _), ())) => *due < now,
                Err(_) => true,
            })
            .filter_map(move |entry| {
                let result = entry.map_err(Refusal::from).and_then(|((due, id), ())| {
                    Ok(self
                        .store
                        .get(&BOOKINGS, &id)?
                        .filter(|b| b.due_at() == Some(due)))
                });
                result.transpose()
            })
    }

    /// Lapses due bookings inside the write `tx` (at most `limit` of those with a due row,
    /// after closing the days that ended): HELD past expires_at → EXPIRED, CONFIRMED past
    /// its check-in deadline → NO_SHOW, freeing their space.
    pub(super) fn sweep_in(
        &self,
        tx: &mut WriteTx<'_>,
        now: i64,
        limit: Option<usize>,
    ) -> Result<usize, Refusal> {
        let mut swept = self.close_ended_days(tx, now)?;
        for entry in self.store.scan_prefix(&DUE, &[]) {
            let ((due, booking_id), ()) = entry?;
            if due >= now || limit.is_some_and(|l| swept >= l) {
                break;
            }
            tx.delete(&DUE, &(due, booking_id.clone()));
            let Some(before) = tx.get(&BOOKINGS, &booking_id)? else {
                continue;
            };
            if before.due_at() != Some(due) {
                continue;
            }
            if tables::lapse(tx, now, &before)? {
                swept += 1;
            }
        }
        Ok(swept)
    }

    /// The first day not closed yet (see the module doc); a database without one gets it
    /// here, two days before today.
    pub(super) fn first_open_day(&self, tx: &mut WriteTx<'_>, now: i64) -> Result<i32, Refusal> {
        if let Some(day) = stored_first_open_day(tx)? {
            return Ok(day);
        }
        let day = domain::day_number(domain::local_day(self.tz(), now)) - 2;
        tx.put(&CLOSED_DAYS, &FIRST_OPEN_DAY.to_string(), &day)?;
        Ok(day)
    }

    /// Closes every day that has ended (see the module doc): each booking of it still
    /// CONFIRMED lapses if past its deadline, or else gets its due row. Returns how many
    /// lapsed.
    fn close_ended_days(&self, tx: &mut WriteTx<'_>, now: i64) -> Result<usize, Refusal> {
        let today = domain::day_number(domain::local_day(self.tz(), now));
        let mut open = self.first_open_day(tx, now)?;
        if open >= today {
            return Ok(0);
        }
        let mut lapsed = 0;
        while open < today {
            for ((_, booking_id), ()) in tx.scan_prefix(&BY_DAY, &open.encode())? {
                let Some(booking) = tx.get(&BOOKINGS, &booking_id)? else {
                    continue;
                };
                if booking.state != BookingState::Confirmed {
                    continue;
                }
                if booking.is_lapsed(now) {
                    tables::lapse(tx, now, &booking)?;
                    lapsed += 1;
                } else if let Some(due) = booking.due_at() {
                    tx.put(&DUE, &(due, booking_id), &())?;
                }
            }
            open += 1;
        }
        tx.put(&CLOSED_DAYS, &FIRST_OPEN_DAY.to_string(), &open)?;
        Ok(lapsed)
    }

    /// True when a sweep would close a day (or record the first open day).
    fn a_day_ended(&self, now: i64) -> Result<bool, Refusal> {
        let today = domain::day_number(domain::local_day(self.tz(), now));
        Ok(self
            .store
            .get(&CLOSED_DAYS, &FIRST_OPEN_DAY.to_string())?
            .is_none_or(|open| open < today))
    }

    /// Lapses every booking due now (HELD past expires_at → EXPIRED, CONFIRMED past the
    /// check-in deadline → NO_SHOW), in durable writes of up to 256. Returns how many.
    /// The background sweeper calls this; tests call it directly.
    pub async fn sweep_due(&self) -> Result<usize, WriteError<Refusal>> {
        let mut total = 0;
        loop {
            let now = self.now_ms();
            let any_due = match self.store.scan_prefix(&DUE, &[]).next() {
                Some(entry) => entry?.0.0 < now,
                None => false,
            } || self.a_day_ended(now).map_err(WriteError::Rejected)?;
            if !any_due {
                return Ok(total);
            }
            let swept = self
                .store
                .write::<u64, Refusal, _>(None, |tx| {
                    let now = tx.now_millis();
                    Ok(self.sweep_in(tx, now, Some(SWEEP_BATCH))? as u64)
                })
                .await?
                .value;
            total += swept as usize;
            if (swept as usize) < SWEEP_BATCH {
                return Ok(total);
            }
        }
    }
}
