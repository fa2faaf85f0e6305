//! The sites a query names, and how a site that did not answer shows in an answer.

use coldchain_network::{NetworkConfig, SiteConfig};

/// A site that did not answer a fan-out (or whose answer cannot be reported): the answer
/// goes on without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteFailure {
    /// The site.
    pub site_id: String,
    /// The canonical name of the failure's code, e.g. `UNAVAILABLE`.
    pub code: String,
    /// Lowercase: the site's own message, or the gateway's.
    pub message: String,
}

/// Ids a request names that are not sites of the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownSites {
    /// The unknown ids, as given.
    pub unknown: Vec<String>,
    /// The network's sites.
    pub known: Vec<String>,
}

/// `ids` that are not sites of `network` (none: `Ok`).
pub fn check_known<'a>(
    network: &NetworkConfig,
    ids: impl IntoIterator<Item = &'a String>,
) -> Result<(), UnknownSites> {
    let unknown: Vec<String> = ids
        .into_iter()
        .filter(|id| network.site(id).is_none())
        .cloned()
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(UnknownSites {
        unknown,
        known: network.site_ids().map(str::to_string).collect(),
    })
}

/// The sites named by a `site_ids` filter (all when empty), in network order, with their
/// index; an unknown id is refused.
pub fn select_sites(
    network: &NetworkConfig,
    ids: &[String],
) -> Result<Vec<(usize, SiteConfig)>, UnknownSites> {
    check_known(network, ids)?;
    Ok(network
        .sites
        .iter()
        .enumerate()
        .filter(|(_, site)| ids.is_empty() || ids.contains(&site.id))
        .map(|(i, site)| (i, site.clone()))
        .collect())
}
