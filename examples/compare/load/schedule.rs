//! The open loop's schedule: when request number `k` is due, whatever the server does. A
//! constant rate puts request `k` at `start + k / rate` (computed from `k`, so rounding never
//! accumulates); a Poisson schedule draws each gap from the exponential distribution of mean
//! `1 / rate` (a fixed seed, so every server is offered the same sequence).
use std::time::{Duration, Instant};

/// How the gaps between scheduled requests are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrivals {
    /// Exactly `1 / rate` apart.
    Constant,
    /// Exponential gaps of mean `1 / rate` (arrivals of a Poisson process).
    Poisson,
}

impl Arrivals {
    pub fn name(self) -> &'static str {
        match self {
            Arrivals::Constant => "constant",
            Arrivals::Poisson => "poisson",
        }
    }
}

/// The seed of the Poisson schedule's generator: the same for every run.
const SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// The due times of one run's requests, in order.
pub struct Schedule {
    start: Instant,
    rate: f64,
    arrivals: Arrivals,
    /// Requests handed out so far.
    k: u64,
    /// Seconds from `start` of the next request (the Poisson schedule).
    at: f64,
    /// xorshift64* state (the Poisson schedule).
    rng: u64,
}

impl Schedule {
    /// A schedule of `rate` requests a second from `start` (the first request is due then).
    pub fn new(start: Instant, rate: f64, arrivals: Arrivals) -> Schedule {
        assert!(rate > 0.0 && rate.is_finite(), "a rate must be positive");
        Schedule {
            start,
            rate,
            arrivals,
            k: 0,
            at: 0.0,
            rng: SEED,
        }
    }

    /// When the next request is due; `advance` moves past it.
    pub fn due(&self) -> Instant {
        let secs = match self.arrivals {
            Arrivals::Constant => self.k as f64 / self.rate,
            Arrivals::Poisson => self.at,
        };
        self.start + Duration::from_secs_f64(secs)
    }

    /// Moves to the request after the one `due` names.
    pub fn advance(&mut self) {
        self.k += 1;
        if self.arrivals == Arrivals::Poisson {
            self.at += -(1.0 - self.uniform()).ln() / self.rate;
        }
    }

    /// A uniform draw from [0, 1).
    fn uniform(&mut self) -> f64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let x = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gaps(arrivals: Arrivals, rate: f64, n: usize) -> Vec<f64> {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, rate, arrivals);
        let mut last = s.due();
        (0..n)
            .map(|_| {
                s.advance();
                let d = s.due();
                let g = (d - last).as_secs_f64();
                last = d;
                g
            })
            .collect()
    }

    #[test]
    fn constant_gaps_are_exact_and_do_not_drift() {
        let t0 = Instant::now();
        let mut s = Schedule::new(t0, 3000.0, Arrivals::Constant);
        for _ in 0..30_000 {
            s.advance();
        }
        // 30,000 requests at 3,000/s: the last is due 10 s after the first, to the nanosecond.
        let off = s.due() - t0;
        assert!(
            off.abs_diff(Duration::from_secs(10)) <= Duration::from_nanos(1),
            "{off:?}"
        );
        for g in gaps(Arrivals::Constant, 1000.0, 1000) {
            assert!((g - 1e-3).abs() < 2e-9, "gap {g}");
        }
    }

    #[test]
    fn poisson_gaps_have_the_mean_and_spread_of_the_rate() {
        let g = gaps(Arrivals::Poisson, 10_000.0, 200_000);
        let mean = g.iter().sum::<f64>() / g.len() as f64;
        let var = g.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / g.len() as f64;
        // An exponential distribution: standard deviation = mean = 1 / rate.
        assert!((mean - 1e-4).abs() < 2e-6, "mean gap {mean}");
        assert!((var.sqrt() - 1e-4).abs() < 4e-6, "sd {}", var.sqrt());
        assert!(g.iter().all(|&x| x >= 0.0));
        // The same seed: the same schedule for every server.
        assert_eq!(g[..100], gaps(Arrivals::Poisson, 10_000.0, 100)[..]);
    }
}
