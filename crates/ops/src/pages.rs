//! Reading a paged listing up to `--limit` items (`transfer list`, `alarms`, `bookings`).

/// The items of a listing read so far, and where the next page starts.
#[derive(Debug)]
pub(crate) struct Pages<T> {
    items: Vec<T>,
    limit: usize,
    token: String,
    truncated: bool,
}

impl<T> Pages<T> {
    /// A listing of at most `limit` items.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            items: Vec::new(),
            limit,
            token: String::new(),
            truncated: false,
        }
    }

    /// The page size to ask for: the limit, within what a server serves.
    pub(crate) fn page_size(&self) -> i32 {
        self.limit.clamp(1, 1000) as i32
    }

    /// The token of the next page to ask for (empty for the first).
    pub(crate) fn token(&mut self) -> String {
        std::mem::take(&mut self.token)
    }

    /// Adds a page; false once the limit is reached or the page was the last.
    pub(crate) fn add(&mut self, items: Vec<T>, next_page_token: String) -> bool {
        self.items.extend(items);
        if self.items.len() >= self.limit {
            self.truncated = self.items.len() > self.limit || !next_page_token.is_empty();
            self.items.truncate(self.limit);
            return false;
        }
        if next_page_token.is_empty() {
            return false;
        }
        self.token = next_page_token;
        true
    }

    /// The items, and whether the listing had more than the limit.
    pub(crate) fn finish(self) -> (Vec<T>, bool) {
        (self.items, self.truncated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_read_up_to_the_limit() {
        let mut pages = Pages::new(3);
        assert_eq!(pages.page_size(), 3);
        assert!(pages.add(vec![1, 2], "next".into()));
        assert_eq!(pages.token(), "next");
        assert!(!pages.add(vec![3, 4], String::new()));
        assert_eq!(pages.finish(), (vec![1, 2, 3], true));

        let mut pages = Pages::new(3);
        assert!(!pages.add(vec![1, 2, 3], String::new()));
        assert_eq!(
            pages.finish(),
            (vec![1, 2, 3], false),
            "exactly the limit, no more"
        );

        let mut pages = Pages::new(5);
        assert!(!pages.add(vec![1], String::new()));
        assert_eq!(pages.finish(), (vec![1], false));
        assert_eq!(Pages::<u8>::new(0).page_size(), 1);
    }
}
