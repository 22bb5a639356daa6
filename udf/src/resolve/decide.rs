//! The resolver's decisions, each a function of only what it depends on,
//! so that each is tested on its own: which tier a miss stores on, whether
//! a stored entry may already be where it stores, and whether its rows can
//! be served as they are written rather than read back.

use nuthatch_catalog::{Policy, TierRole};

/// The tier a computed result is stored on: root when the mode stores
/// globally and the call uses root (`cache`), else the local tier when the
/// mode stores locally and the call has a local key (arguments that make
/// one), else none: the result is served without being stored.
pub(super) fn write_role(policy: &Policy, cache: bool, local_key: bool) -> Option<TierRole> {
    if policy.write_global && cache {
        Some(TierRole::Root)
    } else if policy.write_local && local_key {
        Some(TierRole::Local)
    } else {
        None
    }
}

/// Whether a valid entry may already be where a miss stores, though
/// reading found none: a recompute did not read, and a call storing with
/// another backend than it reads with looked only for its own.
pub(super) fn may_exist(recompute: bool, other_storage_backend: bool) -> bool {
    recompute || other_storage_backend
}

/// What decides whether a miss's rows are served as they are written.
#[derive(Debug, Clone, Copy)]
pub(super) struct Serving {
    /// The call keeps what it serves in memory.
    pub memoize: bool,
    /// The query stops after a few rows.
    pub limited: bool,
    /// The session's memory pool has a limit.
    pub memory_bounded: bool,
    /// The backend reads back exactly the rows it was handed.
    pub exact_rows: bool,
}

/// Why the rows cannot be served as they are written, if they cannot: the
/// memory tier keeps what was read back; a limited query would stop before
/// the write ends; rows the query has not read would wait in memory past a
/// limit; and a backend that stores values changed must serve what it
/// stored.
pub(super) fn read_back_because(serving: Serving) -> Option<&'static str> {
    if serving.memoize {
        Some("the call memoizes")
    } else if serving.limited {
        Some("the query has a limit")
    } else if serving.memory_bounded {
        Some("the session has a memory limit")
    } else if !serving.exact_rows {
        Some("the backend may store values changed")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nuthatch_catalog::CacheMode;

    #[test]
    fn each_mode_stores_where_it_says() {
        use TierRole::{Local, Root};
        // (mode, where with cache and a local key, with cache off, with no
        // local key)
        let cases = [
            (CacheMode::Write, Some(Root), None, Some(Root)),
            (CacheMode::Overwrite, Some(Root), None, Some(Root)),
            (CacheMode::Local, Some(Local), Some(Local), None),
            (CacheMode::LocalOverwrite, Some(Local), Some(Local), None),
            (CacheMode::LocalSync, Some(Local), Some(Local), None),
            (CacheMode::LocalStrict, Some(Local), Some(Local), None),
            (CacheMode::LocalApi, Some(Local), Some(Local), None),
            (CacheMode::ReadOnly, None, None, None),
            (CacheMode::ReadOnlyStrict, None, None, None),
            (CacheMode::Off, None, None, None),
        ];
        let mut wrong = Vec::new();
        for (mode, both, uncached, keyless) in cases {
            let policy = mode.policy();
            let got = (
                write_role(&policy, true, true),
                write_role(&policy, false, true),
                write_role(&policy, true, false),
            );
            if got != (both, uncached, keyless) {
                wrong.push(format!("{mode}: {got:?}"));
            }
        }
        assert!(wrong.is_empty(), "{wrong:?}");
    }

    #[test]
    fn an_entry_may_exist_only_where_reading_could_not_see_it() {
        assert!(!may_exist(false, false));
        assert!(may_exist(true, false));
        assert!(may_exist(false, true));
    }

    #[test]
    fn rows_are_served_as_written_only_when_nothing_needs_them_read_back() {
        let all = Serving {
            memoize: false,
            limited: false,
            memory_bounded: false,
            exact_rows: true,
        };
        assert_eq!(read_back_because(all), None);
        let cases = [
            (
                Serving {
                    memoize: true,
                    ..all
                },
                "memoizes",
            ),
            (
                Serving {
                    limited: true,
                    ..all
                },
                "limit",
            ),
            (
                Serving {
                    memory_bounded: true,
                    ..all
                },
                "memory limit",
            ),
            (
                Serving {
                    exact_rows: false,
                    ..all
                },
                "values changed",
            ),
        ];
        let wrong: Vec<String> = cases
            .iter()
            .filter(|(serving, why)| !read_back_because(*serving).is_some_and(|w| w.contains(why)))
            .map(|(serving, why)| format!("{serving:?} should say {why}"))
            .collect();
        assert!(wrong.is_empty(), "{wrong:?}");
    }
}
