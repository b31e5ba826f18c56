//! When to stop asking for the next page of a 123pan listing (pan123-protocol.md §1.5, §2.4).
//!
//! Pages are numbered from 1 with `limit` 100. The service says "last page" with
//! `Next == "-1"`; OpenList also stops on an empty `InfoList`. A `Next` that does not change
//! between pages means the server is repeating itself (the rclone port treats it as an
//! error); we stop there too rather than loop. `crate::drivers::pages` bounds the listing
//! whatever the server says.
//!
//! Nothing here assumes a page holds `limit` entries: P123 reports that the web platform may
//! answer 500 whatever `limit` says (unconfirmed, §7), and `Total` is known to be wrong with
//! some orders, so neither a short page nor `Total` ends a listing; only the rules above do.

/// Requested page size (the service caps it at 100).
pub const PAGE_LIMIT: u32 = 100;

#[derive(Debug, Default)]
pub struct Pager {
    page: u32,
    last_next: Option<String>,
    done: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Empty,
    LastPage,
    NextUnchanged,
}

impl Pager {
    /// The next page number to request, or `None` when the listing is complete.
    pub fn next_page(&mut self) -> Option<u32> {
        if self.done {
            return None;
        }
        self.page += 1;
        Some(self.page)
    }

    /// Record a page's `Next` and entry count; `Some(reason)` when this was the last page.
    pub fn record(&mut self, next: &str, entries: usize) -> Option<Stop> {
        let stop = if entries == 0 {
            Some(Stop::Empty)
        } else if next.trim() == "-1" {
            Some(Stop::LastPage)
        } else if self.last_next.as_deref() == Some(next) {
            Some(Stop::NextUnchanged)
        } else {
            None
        };
        self.last_next = Some(next.to_string());
        self.done = stop.is_some();
        stop
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_on_minus_one() {
        let mut p = Pager::default();
        assert_eq!(p.next_page(), Some(1));
        assert_eq!(p.record("20002", 100), None);
        assert_eq!(p.next_page(), Some(2));
        assert_eq!(p.record("-1", 34), Some(Stop::LastPage));
        assert_eq!(p.next_page(), None);
    }

    #[test]
    fn stops_on_an_empty_page() {
        let mut p = Pager::default();
        p.next_page();
        assert_eq!(p.record("5", 100), None);
        p.next_page();
        assert_eq!(p.record("6", 0), Some(Stop::Empty));
        assert_eq!(p.next_page(), None);
    }

    #[test]
    fn stops_when_next_does_not_change() {
        let mut p = Pager::default();
        p.next_page();
        assert_eq!(p.record("42", 100), None);
        p.next_page();
        assert_eq!(p.record("42", 100), Some(Stop::NextUnchanged));
        assert_eq!(p.next_page(), None);
    }
}
