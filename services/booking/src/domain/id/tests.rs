use proptest::prelude::*;

use super::*;

#[test]
fn ids_name_their_site() {
    let id = booking_id("cn-huaihua-park", 42);
    assert_eq!(id, "BK-000000000042-cn-huaihua-park");
    assert_eq!(site_of(&id), IdSite::Site("cn-huaihua-park"));
    assert_eq!(site_of("BK-000000000042"), IdSite::Local);
    for unknown in [
        "BK-404-",
        "BK-",
        "BK-x",
        "bk-000000000001",
        "BK-1a",
        "",
        "BK--a",
    ] {
        assert_eq!(site_of(unknown), IdSite::Unknown, "{unknown:?}");
    }
    // Short ids of the old form are still "local": the store decides whether one exists.
    assert_eq!(site_of("BK-404"), IdSite::Local);
    // A site id made of digits is told apart from the sequence by the dash.
    assert_eq!(site_of("BK-000000000001-0-1"), IdSite::Site("0-1"));
    assert_eq!(
        names_other_site("BK-000000000001-la-vientiane", "cn-huaihua-park"),
        Some("la-vientiane")
    );
    assert_eq!(names_other_site(&id, "cn-huaihua-park"), None);
    assert_eq!(names_other_site("BK-000000000001", "cn-huaihua-park"), None);
}

#[test]
fn the_longest_id_is_a_valid_identifier() {
    let site = format!("a{}", "-b".repeat(31));
    assert_eq!(site.len(), 63, "the longest site id");
    let id = booking_id(&site, u64::from(u32::MAX));
    assert!(id.len() <= 79, "{}", id.len());
    assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
}

proptest! {
    /// Within a site, ids sort by creation: new after old, each form by its sequence,
    /// whatever the site id (digits first included).
    #[test]
    fn ids_sort_in_creation_order(
        site in "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?",
        a in 1u64..1_000_000_000_000,
        b in 1u64..1_000_000_000_000,
    ) {
        let (first, second) = (a.min(b), a.max(b));
        prop_assume!(first < second);
        let old = |n: u64| format!("BK-{n:012}");
        prop_assert!(old(first) < old(second));
        prop_assert!(booking_id(&site, first) < booking_id(&site, second));
        prop_assert!(old(first) < booking_id(&site, second));
        let id = booking_id(&site, first);
        prop_assert_eq!(site_of(&id), IdSite::Site(site.as_str()));
    }
}
