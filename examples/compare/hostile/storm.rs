//! The storms: what each does to the server, and the figures a storm run reports.
use super::workers::{CHURN_RATE, CHURN_THREADS, RESET_SEND, SLOWLORIS_CONNS, SLOWLORIS_INTERVAL};
use crate::report::{median, Sample};

/// What runs beside the well-behaved client in a hostile case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storm {
    /// Nothing: the client alone, the baseline of the other storms.
    None,
    /// Connections that send part of a request and close with SO_LINGER 0 (an RST).
    Reset,
    /// Connections closed as soon as they are open, nothing sent (a FIN).
    Vanish,
    /// Many connections, each sending one byte at a slow interval, never done.
    Slowloris,
}

impl Storm {
    /// Every storm, in the order the cases run.
    pub const ALL: [Storm; 4] = [Storm::None, Storm::Reset, Storm::Vanish, Storm::Slowloris];

    /// The name in labels and in the JSON (`case.storm`).
    pub fn name(self) -> &'static str {
        match self {
            Storm::None => "none",
            Storm::Reset => "reset",
            Storm::Vanish => "vanish",
            Storm::Slowloris => "slowloris",
        }
    }

    /// What the storm does, with its rates, for the titles and the legend.
    pub fn about(self) -> String {
        let churn = CHURN_RATE * CHURN_THREADS as f64;
        match self {
            Storm::None => "no storm (the client alone)".into(),
            Storm::Reset => format!(
                "reset: {churn:.0} connections/s ({CHURN_THREADS} threads, one connection \
                 each at a time) that send {RESET_SEND} B and close with SO_LINGER 0 (RST)"
            ),
            Storm::Vanish => format!(
                "vanish: {churn:.0} connections/s ({CHURN_THREADS} threads, one connection \
                 each at a time) closed at once, nothing sent (FIN)"
            ),
            Storm::Slowloris => format!(
                "slowloris: {SLOWLORIS_CONNS} connections (opened during the warm-up), each \
                 sending 1 byte every {} ms, never done ({:.0} bytes/s in all)",
                SLOWLORIS_INTERVAL.as_millis(),
                SLOWLORIS_CONNS as f64 / SLOWLORIS_INTERVAL.as_secs_f64()
            ),
        }
    }
}

/// What a storm's threads counted, each on its own.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tally {
    /// Connections opened (reset, vanish) or bytes sent (slowloris).
    pub events: u64,
    /// Connections that could not be opened, or that broke while open.
    pub failed: u64,
    /// The most storm connections this thread held open at once.
    pub open_peak: u64,
}

impl Tally {
    /// The tallies of every thread of a storm added up.
    pub fn sum(tallies: &[Tally]) -> Tally {
        tallies.iter().fold(Tally::default(), |a, t| Tally {
            events: a.events + t.events,
            failed: a.failed + t.failed,
            open_peak: a.open_peak + t.open_peak,
        })
    }
}

/// What one hostile run's storm did (the storm `none` does nothing: zeros).
#[derive(Clone, Copy, Debug)]
pub struct StormFigures {
    /// Storm events per second over the storm's whole run (warm-up and window): connections
    /// opened (reset, vanish) or bytes sent (slowloris).
    pub rate: f64,
    /// Storm connections that could not be opened or broke while open.
    pub failed: f64,
    /// The most storm connections open at once (the sum over its threads).
    pub open_peak: f64,
    /// How long the storm ran, in seconds.
    pub secs: f64,
}

impl StormFigures {
    /// The figures of a storm that ran `secs` seconds and counted `t`.
    pub fn of(t: Tally, secs: f64) -> StormFigures {
        StormFigures {
            rate: t.events as f64 / secs.max(1e-9),
            failed: t.failed as f64,
            open_peak: t.open_peak as f64,
            secs,
        }
    }

    /// The medians of the storm figures of the runs that have them.
    pub fn median(samples: &[&Sample]) -> Option<StormFigures> {
        let f: Vec<StormFigures> = samples.iter().filter_map(|s| s.storm).collect();
        let col = |g: fn(&StormFigures) -> f64| median(f.iter().map(g).collect());
        (!f.is_empty()).then(|| StormFigures {
            rate: col(|x| x.rate),
            failed: col(|x| x.failed),
            open_peak: col(|x| x.open_peak),
            secs: col(|x| x.secs),
        })
    }
}
