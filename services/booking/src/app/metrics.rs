//! The booking service's domain series (`coldchain_runtime::observe::domain`): pallets per
//! zone for the site's today.

use coldchain_runtime::observe::domain::ZONE_PALLETS;
use coldchain_runtime::observe::sampler::Sample;

use super::BookingApp;

impl BookingApp {
    /// Pallets held, confirmed and checked in per zone today, and each zone's capacity
    /// (lapsed bookings not swept yet left out, as GetAvailability does).
    pub async fn sample(&self) -> Result<Sample, String> {
        let today = self.today();
        let rows = self
            .bookings
            .availability(&self.site().zones, today, today)
            .await
            .map_err(|e| e.to_string())?;
        let mut sample = Sample::default();
        for row in rows {
            let zone = row.zone_id.as_str();
            for (state, pallets) in [
                ("held", row.counts.held),
                ("confirmed", row.counts.confirmed),
                ("checked_in", row.counts.checked_in),
                ("capacity", row.capacity),
            ] {
                sample.set(
                    ZONE_PALLETS,
                    &[("zone", zone), ("state", state)],
                    f64::from(pallets),
                );
            }
        }
        Ok(sample)
    }
}
