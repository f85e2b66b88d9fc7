//! Small questions about syntax trees shared by the checks.

use syn::Attribute;

/// Whether `attrs` hold `#[cfg(test)]` (or `#[cfg(all(test, …))]`): the
/// item is compiled only for tests.
pub fn is_test_only(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|attr| {
        if !attr.path().is_ident("cfg") {
            return false;
        }
        let Ok(meta) = attr.parse_args::<syn::Meta>() else {
            return false;
        };
        match meta {
            syn::Meta::Path(path) => path.is_ident("test"),
            syn::Meta::List(list) if list.path.is_ident("all") => list
                .tokens
                .to_string()
                .split(',')
                .any(|t| t.trim() == "test"),
            _ => false,
        }
    })
}

/// Whether `attrs` mark a test function (`#[test]`, `#[tokio::test]`, …).
pub fn is_test_fn(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path()
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "test")
    })
}
