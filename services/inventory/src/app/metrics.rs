//! The inventory's domain series (`coldchain_runtime::observe::domain`): stock per zone.

use coldchain_runtime::observe::domain::ZONE_STOCK_UNITS;
use coldchain_runtime::observe::sampler::Sample;

use super::InventoryApp;

impl InventoryApp {
    /// Stock on hand, allocated and held per zone of the site (every zone reported, empty
    /// ones as 0).
    pub fn sample(&self) -> Result<Sample, String> {
        let totals = self.store.zone_totals().map_err(|e| e.to_string())?;
        let mut sample = Sample::default();
        for zone in &self.site.zones {
            let zone_totals = totals.get(&zone.id).copied().unwrap_or_default();
            for (state, value) in [
                ("on_hand", zone_totals.on_hand),
                ("allocated", zone_totals.allocated),
                ("held", zone_totals.held),
            ] {
                // i128 → f64 loses precision only past 2^53 units, far beyond a zone.
                #[allow(clippy::cast_precision_loss)]
                let value = value as f64;
                sample.set(
                    ZONE_STOCK_UNITS,
                    &[("zone", zone.id.as_str()), ("state", state)],
                    value,
                );
            }
        }
        Ok(sample)
    }
}
