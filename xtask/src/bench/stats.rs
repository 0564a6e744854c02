//! Medians and quartiles of per-round samples.

/// A sample's 25th, 50th and 75th percentiles (nearest rank).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quartiles {
    pub lo: f64,
    pub mid: f64,
    pub hi: f64,
}

impl Quartiles {
    /// `None` for an empty sample.
    pub fn of(v: &[f64]) -> Option<Quartiles> {
        if v.is_empty() {
            return None;
        }
        let mut v = v.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        Some(Quartiles { lo: at(0.25), mid: at(0.5), hi: at(0.75) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quartiles_of_an_odd_sample_ignore_order() {
        let q = Quartiles::of(&[9.0, 1.0, 5.0, 3.0, 7.0]).unwrap();
        assert_eq!(q, Quartiles { lo: 3.0, mid: 5.0, hi: 7.0 });
    }

    #[test]
    fn one_value_is_its_own_quartiles_and_none_has_none() {
        assert_eq!(Quartiles::of(&[2.5]).unwrap(), Quartiles { lo: 2.5, mid: 2.5, hi: 2.5 });
        assert_eq!(Quartiles::of(&[]), None);
    }
}
