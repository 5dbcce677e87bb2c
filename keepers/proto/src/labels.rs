//! Worker labels and task label selectors, as Ray's: a worker carries labels (its `zone`, and
//! whatever its operator gives it: `region`, `rack`, …); a task's `label_selector` restricts it
//! to workers whose labels match every entry, each written as Ray writes them:
//!
//! - `"v"`: the label equals `v`;
//! - `"!v"`: it does not (or the worker lacks the label);
//! - `"in(a,b)"`: it is one of these;
//! - `"!in(a,b)"`: it is none of these (or missing).
//!
//! A selector is a hard constraint: a task no worker matches waits, like one no worker has
//! the resources for.

use std::collections::BTreeMap;
use std::sync::Arc;

/// A worker's labels.
pub type Labels = Arc<BTreeMap<String, String>>;

/// One entry's condition.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Cond {
    In(Vec<String>),
    NotIn(Vec<String>),
}

/// A task's label selector (entries sorted by key, so equal selectors compare equal).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Selector(Vec<(String, Cond)>);

impl Selector {
    /// Parses a selector; an empty map is `None`.
    pub fn parse(map: &std::collections::HashMap<String, String>) -> Result<Option<Self>, String> {
        if map.is_empty() {
            return Ok(None);
        }
        let mut entries = Vec::with_capacity(map.len());
        for (k, v) in map {
            if k.is_empty() {
                return Err("label_selector: empty label name".into());
            }
            let (negate, rest) = match v.strip_prefix('!') {
                Some(r) => (true, r),
                None => (false, v.as_str()),
            };
            let values: Vec<String> =
                match rest.strip_prefix("in(").and_then(|r| r.strip_suffix(')')) {
                    Some(list) => list.split(',').map(|s| s.trim().to_string()).collect(),
                    None => vec![rest.to_string()],
                };
            if values.iter().any(|s| s.is_empty()) {
                return Err(format!("label_selector {k}={v:?}: an empty value"));
            }
            let cond = if negate {
                Cond::NotIn(values)
            } else {
                Cond::In(values)
            };
            entries.push((k.clone(), cond));
        }
        entries.sort();
        Ok(Some(Selector(entries)))
    }

    /// Whether a worker with `labels` matches every entry.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|(k, c)| {
            let v = labels.get(k);
            match c {
                Cond::In(vs) => v.is_some_and(|v| vs.contains(v)),
                Cond::NotIn(vs) => v.is_none_or(|v| !vs.contains(v)),
            }
        })
    }
}

impl PartialOrd for Cond {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Cond {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let key = |c: &Cond| match c {
            Cond::In(v) => (0, v.clone()),
            Cond::NotIn(v) => (1, v.clone()),
        };
        key(self).cmp(&key(other))
    }
}

/// A worker's labels from its registration: its own, and `zone` when it names one.
pub fn of_worker(zone: &str, own: &std::collections::HashMap<String, String>) -> Labels {
    let mut m: BTreeMap<String, String> = own.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    if !zone.is_empty() {
        m.insert("zone".into(), zone.to_string());
    }
    Arc::new(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn sel(pairs: &[(&str, &str)]) -> Selector {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Selector::parse(&m).unwrap().unwrap()
    }

    #[test]
    fn selectors_match_as_rays_do() {
        let w = of_worker(
            "eu-west-1a",
            &HashMap::from([("region".to_string(), "eu-west".to_string())]),
        );
        assert!(sel(&[("zone", "eu-west-1a")]).matches(&w));
        assert!(!sel(&[("zone", "eu-west-1b")]).matches(&w));
        assert!(sel(&[("zone", "!eu-west-1b")]).matches(&w));
        assert!(
            sel(&[
                ("zone", "in(eu-west-1b, eu-west-1a)"),
                ("region", "eu-west")
            ])
            .matches(&w)
        );
        assert!(!sel(&[("zone", "!in(eu-west-1a,x)")]).matches(&w));
        assert!(
            !sel(&[("rack", "r1")]).matches(&w),
            "a missing label does not equal"
        );
        assert!(sel(&[("rack", "!r1")]).matches(&w), "and is not any value");
        assert_eq!(Selector::parse(&HashMap::new()).unwrap(), None);
        for bad in [("", "x"), ("zone", ""), ("zone", "in(a,)"), ("zone", "!")] {
            let m = HashMap::from([(bad.0.to_string(), bad.1.to_string())]);
            assert!(Selector::parse(&m).is_err(), "{bad:?}");
        }
        assert_eq!(
            sel(&[("a", "1"), ("b", "2")]),
            sel(&[("b", "2"), ("a", "1")])
        );
    }
}
