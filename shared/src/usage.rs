//! What a sync consumed, measured as it ran rather than modelled: the DynamoDB capacity
//! DynamoDB itself reports (`ReturnConsumedCapacity`), each stage invocation and its
//! duration, and the S3 requests. Every function process keeps one [`Meter`], which its
//! DynamoDB and S3 adapters feed; each stage adds what its invocation used to its job
//! (`JobStore::add_usage`), and the job detail, the history and the CLI price it.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// AWS list prices in USD (us-east-1; Lambda on arm64; DynamoDB on demand; S3 Standard).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Prices {
    pub lambda_per_million_requests: f64,
    pub lambda_per_gb_second: f64,
    pub step_functions_per_thousand_transitions: f64,
    pub dynamodb_per_million_write_units: f64,
    pub dynamodb_per_million_read_units: f64,
    pub dynamodb_per_gb_month: f64,
    pub s3_per_thousand_puts: f64,
    pub s3_per_thousand_gets: f64,
    pub s3_per_gb_month: f64,
}

impl Default for Prices {
    fn default() -> Self {
        Prices {
            lambda_per_million_requests: 0.20,
            lambda_per_gb_second: 0.000_013_333_4,
            step_functions_per_thousand_transitions: 0.025,
            dynamodb_per_million_write_units: 0.625,
            dynamodb_per_million_read_units: 0.125,
            dynamodb_per_gb_month: 0.25,
            s3_per_thousand_puts: 0.005,
            s3_per_thousand_gets: 0.0004,
            s3_per_gb_month: 0.023,
        }
    }
}

/// Resources consumed, in whole units so that a store can add them exactly.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// DynamoDB read capacity units, in thousandths (an eventually consistent read of
    /// 4 KB costs half a unit).
    #[serde(default)]
    pub dynamodb_read_milliunits: u64,
    /// DynamoDB write capacity units, in thousandths.
    #[serde(default)]
    pub dynamodb_write_milliunits: u64,
    /// Stage invocations of the sync's Lambda functions.
    #[serde(default)]
    pub lambda_invocations: u64,
    /// Their duration times their configured memory, in MB-milliseconds (what Lambda
    /// bills, as GB-seconds).
    #[serde(default)]
    pub lambda_mb_milliseconds: u64,
    #[serde(default)]
    pub s3_puts: u64,
    #[serde(default)]
    pub s3_gets: u64,
}

/// What a [`Usage`] costs at list prices, in US dollars.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageCost {
    pub dynamodb_usd: f64,
    pub lambda_usd: f64,
    pub s3_usd: f64,
    pub total_usd: f64,
}

impl Usage {
    /// Every counter by the name it is stored under, for a store's `ADD`.
    pub fn fields(&self) -> [(&'static str, u64); 6] {
        [
            ("dynamodb_read_milliunits", self.dynamodb_read_milliunits),
            ("dynamodb_write_milliunits", self.dynamodb_write_milliunits),
            ("lambda_invocations", self.lambda_invocations),
            ("lambda_mb_milliseconds", self.lambda_mb_milliseconds),
            ("s3_puts", self.s3_puts),
            ("s3_gets", self.s3_gets),
        ]
    }

    pub fn add(&mut self, other: &Usage) {
        self.dynamodb_read_milliunits += other.dynamodb_read_milliunits;
        self.dynamodb_write_milliunits += other.dynamodb_write_milliunits;
        self.lambda_invocations += other.lambda_invocations;
        self.lambda_mb_milliseconds += other.lambda_mb_milliseconds;
        self.s3_puts += other.s3_puts;
        self.s3_gets += other.s3_gets;
    }

    /// What was used after `earlier`, a reading of the same meter.
    pub fn since(&self, earlier: &Usage) -> Usage {
        Usage {
            dynamodb_read_milliunits: self.dynamodb_read_milliunits.saturating_sub(earlier.dynamodb_read_milliunits),
            dynamodb_write_milliunits: self.dynamodb_write_milliunits.saturating_sub(earlier.dynamodb_write_milliunits),
            lambda_invocations: self.lambda_invocations.saturating_sub(earlier.lambda_invocations),
            lambda_mb_milliseconds: self.lambda_mb_milliseconds.saturating_sub(earlier.lambda_mb_milliseconds),
            s3_puts: self.s3_puts.saturating_sub(earlier.s3_puts),
            s3_gets: self.s3_gets.saturating_sub(earlier.s3_gets),
        }
    }

    pub fn read_units(&self) -> f64 {
        self.dynamodb_read_milliunits as f64 / 1000.0
    }

    pub fn write_units(&self) -> f64 {
        self.dynamodb_write_milliunits as f64 / 1000.0
    }

    pub fn cost(&self, prices: &Prices) -> UsageCost {
        let dynamodb_usd = self.read_units() / 1e6 * prices.dynamodb_per_million_read_units
            + self.write_units() / 1e6 * prices.dynamodb_per_million_write_units;
        let gb_seconds = self.lambda_mb_milliseconds as f64 / 1024.0 / 1000.0;
        let lambda_usd = self.lambda_invocations as f64 / 1e6 * prices.lambda_per_million_requests
            + gb_seconds * prices.lambda_per_gb_second;
        let s3_usd = self.s3_puts as f64 / 1e3 * prices.s3_per_thousand_puts
            + self.s3_gets as f64 / 1e3 * prices.s3_per_thousand_gets;
        UsageCost { dynamodb_usd, lambda_usd, s3_usd, total_usd: dynamodb_usd + lambda_usd + s3_usd }
    }
}

/// One function process's running total: its adapters add to it, and a stage reads it
/// before and after its work. A Lambda process serves one invocation at a time, so the
/// difference is that invocation's.
#[derive(Debug, Default)]
pub struct Meter {
    dynamodb_read_milliunits: AtomicU64,
    dynamodb_write_milliunits: AtomicU64,
    s3_puts: AtomicU64,
    s3_gets: AtomicU64,
}

impl Meter {
    pub fn reading(&self) -> Usage {
        Usage {
            dynamodb_read_milliunits: self.dynamodb_read_milliunits.load(Ordering::Relaxed),
            dynamodb_write_milliunits: self.dynamodb_write_milliunits.load(Ordering::Relaxed),
            s3_puts: self.s3_puts.load(Ordering::Relaxed),
            s3_gets: self.s3_gets.load(Ordering::Relaxed),
            ..Usage::default()
        }
    }

    pub fn dynamodb_read(&self, units: f64) {
        self.dynamodb_read_milliunits.fetch_add(milliunits(units), Ordering::Relaxed);
    }

    pub fn dynamodb_write(&self, units: f64) {
        self.dynamodb_write_milliunits.fetch_add(milliunits(units), Ordering::Relaxed);
    }

    pub fn s3_put(&self) {
        self.s3_puts.fetch_add(1, Ordering::Relaxed);
    }

    pub fn s3_get(&self) {
        self.s3_gets.fetch_add(1, Ordering::Relaxed);
    }
}

fn milliunits(units: f64) -> u64 {
    (units * 1000.0).round().max(0.0) as u64
}

/// The memory a Lambda function runs with: Lambda tells it in
/// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`; the template's 512 MB otherwise.
pub fn function_memory_mb() -> u64 {
    std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").ok().and_then(|mb| mb.parse().ok()).unwrap_or(512)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_meter_reading_tells_what_was_used_since_an_earlier_one() {
        let meter = Meter::default();
        meter.dynamodb_read(0.5);
        let before = meter.reading();
        meter.dynamodb_read(2.5);
        meter.dynamodb_write(3.0);
        meter.s3_put();
        let used = meter.reading().since(&before);
        assert_eq!((used.read_units(), used.write_units(), used.s3_puts, used.s3_gets), (2.5, 3.0, 1, 0));
    }

    #[test]
    fn usage_is_priced_at_list_prices() {
        // A million write units, two million read units, a million 1 GB-second invocations.
        let usage = Usage {
            dynamodb_read_milliunits: 2_000_000_000,
            dynamodb_write_milliunits: 1_000_000_000,
            lambda_invocations: 1_000_000,
            lambda_mb_milliseconds: 1_000_000 * 1024 * 1000,
            s3_puts: 1000,
            s3_gets: 1000,
        };
        let prices = Prices::default();
        let cost = usage.cost(&prices);
        let dynamodb = 2.0 * prices.dynamodb_per_million_read_units + prices.dynamodb_per_million_write_units;
        assert!((cost.dynamodb_usd - dynamodb).abs() < 1e-9);
        let lambda = prices.lambda_per_million_requests + 1e6 * prices.lambda_per_gb_second;
        assert!((cost.lambda_usd - lambda).abs() < 1e-9);
        assert!((cost.total_usd - (cost.dynamodb_usd + cost.lambda_usd + cost.s3_usd)).abs() < 1e-12);
    }
}
