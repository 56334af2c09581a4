//! `--memory`, `--cpus`, `--pids`, `--io-weight`: human units to exact plan values.

use anyhow::{anyhow, bail, Result};
use protocol::{IoWeight, MemoryLimit, MilliCpus, PidsLimit, PAGE_BYTES};

/// `512M`, `1G`, `1.5GiB`, `1048576`, or `max`. Units are binary (K = 1024).
pub fn parse_memory(v: &str) -> Result<MemoryLimit> {
    let err = || anyhow!("--memory {v}: expected a size like 512M, 1G or 1.5G, or max");
    if v.eq_ignore_ascii_case("max") {
        return Ok(MemoryLimit::Max);
    }
    let lower = v.to_ascii_lowercase();
    let digits = lower.trim_end_matches("ib").trim_end_matches('b');
    let (number, unit) = match digits.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => digits.split_at(i),
        None => (digits, ""),
    };
    let scale: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return Err(err()),
    };
    let value: f64 = number.parse().map_err(|_| err())?;
    if !value.is_finite() || value <= 0.0 {
        return Err(err());
    }
    let bytes = value * scale as f64;
    if bytes > u64::MAX as f64 {
        return Err(err());
    }
    let bytes = bytes.round() as u64;
    if bytes < PAGE_BYTES {
        bail!("--memory {v}: at least {PAGE_BYTES} bytes");
    }
    Ok(MemoryLimit::Bytes(bytes))
}

/// `1.5` CPUs, to a thousandth.
pub fn parse_cpus(v: &str) -> Result<MilliCpus> {
    let err = || anyhow!("--cpus {v}: expected a number of CPUs like 0.5, 1 or 1.5");
    let cpus: f64 = v.parse().map_err(|_| err())?;
    if !cpus.is_finite() || !(0.001..=4096.0).contains(&cpus) {
        return Err(err());
    }
    MilliCpus::try_from((cpus * 1000.0).round() as u32).map_err(|_| err())
}

pub fn parse_pids(v: &str) -> Result<PidsLimit> {
    let err = || anyhow!("--pids {v}: expected a whole number of processes, at least 1");
    let n: u32 = v.parse().map_err(|_| err())?;
    PidsLimit::try_from(n).map_err(|_| err())
}

pub fn parse_io_weight(v: &str) -> Result<IoWeight> {
    let err = || anyhow!("--io-weight {v}: expected a whole number from 1 to 10000");
    let n: u16 = v.parse().map_err(|_| err())?;
    IoWeight::try_from(n).map_err(|_| err())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory("512M").unwrap(), MemoryLimit::Bytes(512 << 20));
        assert_eq!(parse_memory("1G").unwrap(), MemoryLimit::Bytes(1 << 30));
        assert_eq!(parse_memory("1.5GiB").unwrap(), MemoryLimit::Bytes(3 << 29));
        assert_eq!(parse_memory("8192").unwrap(), MemoryLimit::Bytes(8192));
        assert_eq!(parse_memory("64kb").unwrap(), MemoryLimit::Bytes(64 << 10));
        assert_eq!(parse_memory("max").unwrap(), MemoryLimit::Max);
        for bad in ["", "M", "-1G", "1X", "0", "100", "1e400", "nan"] {
            assert!(parse_memory(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cpu_and_pid_counts() {
        assert_eq!(parse_cpus("1.5").unwrap().get(), 1500);
        assert_eq!(parse_cpus("0.25").unwrap().get(), 250);
        for bad in ["0", "-1", "x", "0.0001", "inf"] {
            assert!(parse_cpus(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_pids("64").unwrap().get(), 64);
        assert_eq!(parse_io_weight("10000").unwrap().get(), 10000);
        for bad in ["0", "10001", "-1", "x", ""] {
            assert!(parse_io_weight(bad).is_err(), "{bad:?}");
        }
        for bad in ["0", "-3", "1.5", ""] {
            assert!(parse_pids(bad).is_err(), "{bad:?}");
        }
    }
}
