//! One parser for byte sizes on the command line (`--max-file-size`, `--max-total`,
//! `--yara-max-size`, ...).

/// Parses a byte size: a whole number and an optional unit, case-insensitive, with or
/// without a space: `B`, `K`/`KB`/`KiB`, `M`/`MB`/`MiB`, `G`/`GB`/`GiB`, `T`/`TB`/`TiB`.
///
/// Every unit is binary (1024-based): `KB` and `KiB` both mean 1024 bytes, `MB` and
/// `MiB` both 1,048,576, as memory limits are usually meant (`docker run -m 512m`);
/// for limits the difference is small and the binary reading is the larger one.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("not a size: {s:?} (try 512MiB)"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "unknown size unit in {s:?} (use B, KiB, MiB, GiB or TiB)"
            ))
        }
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn every_unit_spelling_is_binary() {
        for (text, want) in [
            ("4096", 4096),
            ("7B", 7),
            ("7 b", 7),
            ("1K", 1 << 10),
            ("1kb", 1 << 10),
            ("1KiB", 1 << 10),
            ("512M", 512 << 20),
            ("512MB", 512 << 20),
            ("512MiB", 512 << 20),
            ("64mib", 64 << 20),
            ("1g", 1 << 30),
            ("64GB", 64 << 30),
            ("64GiB", 64 << 30),
            ("2T", 2 << 40),
            ("2TB", 2 << 40),
            ("2TiB", 2 << 40),
            (" 3 GiB ", 3 << 30),
        ] {
            assert_eq!(parse_size(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn bad_sizes_are_refused_with_a_reason() {
        assert!(parse_size("").unwrap_err().contains("not a size"));
        assert!(parse_size("MiB").unwrap_err().contains("not a size"));
        assert!(parse_size("-1").unwrap_err().contains("not a size"));
        assert!(parse_size("1.5G")
            .unwrap_err()
            .contains("unknown size unit"));
        assert!(parse_size("5 parsecs")
            .unwrap_err()
            .contains("unknown size unit"));
        assert!(parse_size("1PiB")
            .unwrap_err()
            .contains("unknown size unit"));
        assert!(parse_size("99999999999999999999").is_err());
        assert!(parse_size("20000000TiB").unwrap_err().contains("too large"));
    }
}
