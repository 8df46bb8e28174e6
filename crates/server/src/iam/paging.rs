//! IAM's list paging: `MaxItems` and `Marker` on every List call that has them, and on GetGroup's
//! members.
//!
//! AWS (for example https://docs.aws.amazon.com/IAM/latest/APIReference/API_ListUsers.html):
//! `MaxItems` is 1 to 1,000 and "if you do not include this parameter, the number of items
//! defaults to 100"; when more items are available "the IsTruncated response element is true"
//! and `Marker` holds the value to pass "in the subsequent request … to indicate where the next
//! call should start". `Marker` is otherwise opaque. Here it is the position of the next item in
//! the list's order (name order for users, roles, groups and policies), so a list changed
//! between two pages may skip or repeat an item, as AWS warns callers of paged lists that are
//! being changed.

use http::StatusCode;

use super::Query;
use crate::error::S3Error;
use crate::xml::XmlWriter;

/// AWS's bound on `MaxItems`.
pub const MAX_ITEMS: usize = 1000;
/// Items per page when the request names no `MaxItems`.
pub const DEFAULT_ITEMS: usize = 100;

/// Which part of a list one request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    start: usize,
    max: usize,
}

impl Paging {
    /// Reads `MaxItems` and `Marker`; a bad value of either is a `ValidationError` naming it.
    pub fn from_query(q: &Query) -> Result<Self, S3Error> {
        let max = match q.get("MaxItems") {
            None => DEFAULT_ITEMS,
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_ITEMS).contains(n))
                .ok_or_else(|| {
                    invalid(format!(
                        "MaxItems `{v}` must be a number from 1 to {MAX_ITEMS} (the default is {DEFAULT_ITEMS})"
                    ))
                })?,
        };
        let start = match q.get("Marker") {
            None => 0,
            Some(v) => v.parse::<usize>().ok().filter(|&m| m > 0).ok_or_else(|| {
                invalid(format!(
                    "Marker `{v}` is not one a list returned; pass the Marker of the previous page, or none for the first"
                ))
            })?,
        };
        Ok(Paging { start, max })
    }

    /// This page's items of the whole list, and the marker of the next page if there is one.
    /// A marker past the end (the list shrank since) gives an empty last page.
    pub fn page<'a, T>(&self, items: &'a [T]) -> (&'a [T], Option<String>) {
        let start = self.start.min(items.len());
        let end = start.saturating_add(self.max).min(items.len());
        let next = (end < items.len()).then(|| end.to_string());
        (items.get(start..end).unwrap_or_default(), next)
    }
}

/// Writes `IsTruncated`, and `Marker` when there is a next page.
pub fn truncation(w: &mut XmlWriter, next: Option<&str>) {
    match next {
        Some(marker) => {
            w.elem("IsTruncated", "true");
            w.elem("Marker", marker);
        }
        None => w.elem("IsTruncated", "false"),
    }
}

/// Writes a paged list: `container` with one element per item of the page (written by `item`),
/// then the truncation elements.
pub fn list<T>(
    w: &mut XmlWriter,
    paging: Paging,
    container: &str,
    items: &[T],
    mut item: impl FnMut(&mut XmlWriter, &T),
) {
    let written = try_list(w, paging, container, items, |w, t| {
        item(w, t);
        Ok::<_, std::convert::Infallible>(())
    });
    match written {
        Ok(()) => {}
        Err(never) => match never {},
    }
}

/// [`list`] for items whose writing can fail: the first failure is returned.
pub fn try_list<T, E>(
    w: &mut XmlWriter,
    paging: Paging,
    container: &str,
    items: &[T],
    mut item: impl FnMut(&mut XmlWriter, &T) -> Result<(), E>,
) -> Result<(), E> {
    let (page, next) = paging.page(items);
    w.open(container);
    for t in page {
        item(w, t)?;
    }
    w.close(container);
    truncation(w, next.as_deref());
    Ok(())
}

fn invalid(message: String) -> S3Error {
    S3Error::new("ValidationError", StatusCode::BAD_REQUEST, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn paging(pairs: &[(&str, &str)]) -> Result<Paging, S3Error> {
        let raw: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        Paging::from_query(&Query::parse(Some(&raw.join("&"))))
    }

    #[test]
    fn defaults_and_bounds_are_aws_s() {
        assert_eq!(
            paging(&[]).unwrap(),
            Paging {
                start: 0,
                max: DEFAULT_ITEMS
            }
        );
        assert_eq!(paging(&[("MaxItems", "1000")]).unwrap().max, 1000);
        for bad in [("MaxItems", "0"), ("MaxItems", "1001"), ("MaxItems", "x")] {
            let e = paging(&[bad]).unwrap_err();
            assert!(e.to_string().contains("MaxItems"), "{e}");
        }
        for bad in ["0", "-1", "abc", ""] {
            let e = paging(&[("Marker", bad)]).unwrap_err();
            assert!(e.to_string().contains("Marker"), "{e}");
        }
    }

    proptest! {
        /// Following markers from the first page visits every item once, in order, and no page
        /// is longer than MaxItems.
        #[test]
        fn following_markers_visits_every_item_once(len in 0usize..350, max in 1usize..120) {
            let items: Vec<usize> = (0..len).collect();
            let mut seen = Vec::new();
            let mut marker: Option<String> = None;
            loop {
                let max_s = max.to_string();
                let mut pairs = vec![("MaxItems", max_s.as_str())];
                if let Some(m) = &marker {
                    pairs.push(("Marker", m.as_str()));
                }
                let (page, next) = paging(&pairs).unwrap().page(&items);
                prop_assert!(page.len() <= max);
                seen.extend_from_slice(page);
                match next {
                    Some(m) => marker = Some(m),
                    None => break,
                }
            }
            prop_assert_eq!(seen, items);
        }
    }

    #[test]
    fn a_marker_past_the_end_is_an_empty_last_page() {
        let items = [1, 2, 3];
        let (page, next) = paging(&[("Marker", "7")]).unwrap().page(&items);
        assert!(page.is_empty());
        assert_eq!(next, None);
    }
}
