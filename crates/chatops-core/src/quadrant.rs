//! Quadrants: commands classified by duration (short/long) and side effects (read/write).
//! A quadrant selects the queue, the worker pool and its defaults.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Quadrant {
    ShortRead,
    ShortWrite,
    LongRead,
    LongWrite,
}

impl Quadrant {
    pub const ALL: [Quadrant; 4] = [Quadrant::ShortRead, Quadrant::ShortWrite, Quadrant::LongRead, Quadrant::LongWrite];

    /// Position in [`Quadrant::ALL`], for arrays indexed by quadrant.
    pub const fn index(self) -> usize {
        match self {
            Quadrant::ShortRead => 0,
            Quadrant::ShortWrite => 1,
            Quadrant::LongRead => 2,
            Quadrant::LongWrite => 3,
        }
    }

    /// `short-read`, ... as used in config files, queue names and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Quadrant::ShortRead => "short-read",
            Quadrant::ShortWrite => "short-write",
            Quadrant::LongRead => "long-read",
            Quadrant::LongWrite => "long-write",
        }
    }

    /// The worker component name used in the log contract (`component` field).
    pub fn component(self) -> &'static str {
        match self {
            Quadrant::ShortRead => "sr-worker",
            Quadrant::ShortWrite => "sw-worker",
            Quadrant::LongRead => "lr-worker",
            Quadrant::LongWrite => "lw-worker",
        }
    }

    /// The quadrants whose commands change something: a started effect is not re-run.
    pub fn is_write(self) -> bool {
        matches!(self, Quadrant::ShortWrite | Quadrant::LongWrite)
    }

    pub fn is_long(self) -> bool {
        matches!(self, Quadrant::LongRead | Quadrant::LongWrite)
    }

    /// A short token for subjects and table keys: `sr`, `sw`, `lr`, `lw`.
    pub fn short(self) -> &'static str {
        &self.component()[..2]
    }
}

impl std::fmt::Display for Quadrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Quadrant {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quadrant::ALL.into_iter().find(|q| q.as_str() == s || q.component() == s || q.short() == s).ok_or_else(|| {
            format!("unknown quadrant `{s}` (expected short-read, short-write, long-read or long-write)")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for q in Quadrant::ALL {
            assert_eq!(q.as_str().parse::<Quadrant>(), Ok(q));
            assert_eq!(q.component().parse::<Quadrant>(), Ok(q));
        }
        assert_eq!(Quadrant::LongWrite.short(), "lw");
        assert!("medium".parse::<Quadrant>().is_err());
    }

    #[test]
    fn index_is_the_position_in_all() {
        for (i, q) in Quadrant::ALL.into_iter().enumerate() {
            assert_eq!(q.index(), i);
        }
    }
}
