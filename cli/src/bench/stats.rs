//! Percentiles of a sample.

use serde_json::json;

pub struct Summary {
    pub n: usize,
    pub p50: f64,
    pub p99: f64,
    pub mean: f64,
    pub max: f64,
    pub min: f64,
}

impl Summary {
    pub fn of(mut v: Vec<f64>) -> Summary {
        assert!(!v.is_empty(), "no samples");
        v.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| v[(((v.len() - 1) as f64) * p).round() as usize];
        Summary {
            n: v.len(),
            p50: pct(0.50),
            p99: pct(0.99),
            mean: v.iter().sum::<f64>() / v.len() as f64,
            max: v[v.len() - 1],
            min: v[0],
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        json!({"n": self.n, "p50": self.p50, "p99": self.p99, "mean": self.mean, "min": self.min, "max": self.max})
    }
}
