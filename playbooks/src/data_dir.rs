//! Where exhibit-drill finds its data at run time: the drill playbooks, the profiles
//! and the YARA rules (docs/playbooks.md, "Where the drills are found"). Never a path
//! compiled in from the build machine's source tree.
//!
//! A data directory is either installed (`DIR/drills`, `DIR/profiles`, `DIR/yara`,
//! e.g. /usr/local/share/exhibit) or a source checkout (`DIR/playbooks/drills`,
//! `DIR/fixtures/profiles`, `DIR/fixtures/yara`). Searched in order: `--data-dir`,
//! `EXHIBIT_DATA_DIR`, `<exe dir>/../share/exhibit`, a checkout that holds the binary
//! (the exe's directory and each one above it, as for target/debug/exhibit-drill),
//! /usr/local/share/exhibit, /usr/share/exhibit. `--drills`/`EXHIBIT_DRILLS`,
//! `EXHIBIT_PROFILES` and `EXHIBIT_YARA` override single directories.

use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

/// The environment variable naming the data directory.
pub const ENV: &str = "EXHIBIT_DATA_DIR";

/// System data directories, searched last.
pub const SYSTEM: [&str; 2] = ["/usr/local/share/exhibit", "/usr/share/exhibit"];

/// A data directory and its layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    /// The directory found.
    pub root: PathBuf,
    /// A source checkout (playbooks/drills, fixtures/...) rather than an installed one.
    pub checkout: bool,
}

impl DataDir {
    /// `dir` as a data directory, when it holds drills in either layout.
    pub fn at(dir: &Path) -> Option<DataDir> {
        if dir.join("drills").is_dir() {
            Some(DataDir {
                root: dir.to_path_buf(),
                checkout: false,
            })
        } else if dir.join("playbooks/drills").is_dir() {
            Some(DataDir {
                root: dir.to_path_buf(),
                checkout: true,
            })
        } else {
            None
        }
    }

    /// The drill playbooks.
    pub fn drills(&self) -> PathBuf {
        self.path("playbooks/drills", "drills")
    }

    /// The profiles drills name in `profile:`.
    pub fn profiles(&self) -> PathBuf {
        self.path("fixtures/profiles", "profiles")
    }

    /// The YARA rules drills name in `yara:`.
    pub fn yara(&self) -> PathBuf {
        self.path("fixtures/yara", "yara")
    }

    fn path(&self, in_checkout: &str, installed: &str) -> PathBuf {
        self.root.join(if self.checkout {
            in_checkout
        } else {
            installed
        })
    }
}

/// What the user said: `--data-dir`, `--drills` and the environment.
#[derive(Debug, Clone, Default)]
pub struct Lookup {
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `EXHIBIT_DATA_DIR`.
    pub env: Option<PathBuf>,
    /// `--drills`, else `EXHIBIT_DRILLS`.
    pub drills: Option<PathBuf>,
    /// `EXHIBIT_PROFILES`.
    pub profiles: Option<PathBuf>,
    /// `EXHIBIT_YARA`.
    pub yara: Option<PathBuf>,
    /// The running binary (`std::env::current_exe`).
    pub exe: Option<PathBuf>,
}

impl Lookup {
    /// From the flags, the environment and the running binary.
    pub fn from_env(data_dir: Option<PathBuf>, drills: Option<PathBuf>) -> Lookup {
        let var = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Lookup {
            data_dir,
            env: var(ENV),
            drills: drills.or_else(|| var("EXHIBIT_DRILLS")),
            profiles: var("EXHIBIT_PROFILES"),
            yara: var("EXHIBIT_YARA"),
            exe: std::env::current_exe().ok(),
        }
    }

    /// Finds the data directory; a directory named by flag or environment that holds
    /// no drills is an error, nothing found is `Ok(None)`.
    pub fn find(&self) -> Result<Option<DataDir>> {
        for (what, dir) in [("--data-dir", &self.data_dir), (ENV, &self.env)] {
            if let Some(dir) = dir {
                return match DataDir::at(dir) {
                    Some(d) => Ok(Some(d)),
                    None => bail!(
                        "{what} {}: no drills/ (installed layout) or playbooks/drills/ \
                         (source checkout) in it\n\
                         hint: name a directory holding drills/, profiles/ and yara/ \
                         (e.g. /usr/local/share/exhibit) or an exhibit source checkout",
                        dir.display()
                    ),
                };
            }
        }
        Ok(self.candidates().iter().find_map(|c| DataDir::at(c)))
    }

    /// The places searched after the flag and the environment, in order.
    fn candidates(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if let Some(bin) = self.exe.as_deref().and_then(Path::parent) {
            if let Some(prefix) = bin.parent() {
                out.push(prefix.join("share/exhibit"));
            }
            // A checkout holding the binary (target/debug/exhibit-drill): the checkout
            // layout only, so an unrelated `drills/` above the binary is never taken.
            out.extend(
                bin.ancestors()
                    .filter(|a| a.join("playbooks/drills").is_dir())
                    .map(Path::to_path_buf),
            );
        }
        out.extend(SYSTEM.iter().map(PathBuf::from));
        out
    }

    /// The searched places, for the hint of a data directory not found.
    fn searched(&self) -> String {
        let mut s = vec![
            "--data-dir (not given)".to_string(),
            format!("{ENV} (not set)"),
        ];
        if let Some(bin) = self.exe.as_deref().and_then(Path::parent) {
            if let Some(prefix) = bin.parent() {
                s.push(prefix.join("share/exhibit").display().to_string());
            }
            s.push(format!(
                "playbooks/drills in {} and each directory above it",
                bin.display()
            ));
        }
        s.extend(SYSTEM.iter().map(|d| d.to_string()));
        s.join(", ")
    }

    /// The directories of this run; `all` also needs profiles and YARA rules (`run`),
    /// else only the drills (`list`).
    pub fn resolve(&self, all: bool) -> Result<DataPaths> {
        let overridden =
            self.drills.is_some() && (!all || (self.profiles.is_some() && self.yara.is_some()));
        let dir = if overridden {
            // Still refuse a bad --data-dir or EXHIBIT_DATA_DIR.
            self.find()?
        } else {
            match self.find()? {
                Some(d) => Some(d),
                None => bail!(
                    "no exhibit data directory (drills, profiles, YARA rules) found\n\
                     hint: searched {}\n\
                     hint: pass --data-dir DIR or set {ENV}=DIR, DIR an installed \
                     share/exhibit (drills/, profiles/, yara/) or an exhibit source checkout",
                    self.searched()
                ),
            }
        };
        let pick = |given: &Option<PathBuf>, from: fn(&DataDir) -> PathBuf| {
            given
                .clone()
                .or_else(|| dir.as_ref().map(from))
                .unwrap_or_default()
        };
        Ok(DataPaths {
            drills: pick(&self.drills, DataDir::drills),
            profiles: pick(&self.profiles, DataDir::profiles),
            yara: pick(&self.yara, DataDir::yara),
        })
    }
}

/// The directories one run reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataPaths {
    /// Drill playbooks.
    pub drills: PathBuf,
    /// Profiles the drills' `profile:` names are relative to.
    pub profiles: PathBuf,
    /// Rules directory the drills' `yara:` paths are relative to.
    pub yara: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkout() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf()
    }

    fn lookup(exe: &Path) -> Lookup {
        Lookup {
            exe: Some(exe.to_path_buf()),
            ..Lookup::default()
        }
    }

    #[test]
    fn a_binary_inside_a_checkout_finds_the_checkout() {
        let exe = checkout().join("target/debug/exhibit-drill");
        let p = lookup(&exe).resolve(true).unwrap();
        assert_eq!(p.drills, checkout().join("playbooks/drills"));
        assert_eq!(p.profiles, checkout().join("fixtures/profiles"));
        assert_eq!(p.yara, checkout().join("fixtures/yara"));
    }

    #[test]
    fn an_installed_binary_finds_share_exhibit_before_anything_else() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("share/exhibit/drills")).unwrap();
        let exe = tmp.path().join("bin/exhibit-drill");
        let p = lookup(&exe).resolve(true).unwrap();
        assert_eq!(p.drills, tmp.path().join("share/exhibit/drills"));
        assert_eq!(p.profiles, tmp.path().join("share/exhibit/profiles"));
        assert_eq!(p.yara, tmp.path().join("share/exhibit/yara"));
    }

    #[test]
    fn flag_then_environment_win_and_a_wrong_one_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let exe = checkout().join("target/debug/exhibit-drill");
        let l = Lookup {
            data_dir: Some(checkout()),
            env: Some(tmp.path().to_path_buf()),
            ..lookup(&exe)
        };
        assert_eq!(
            l.resolve(false).unwrap().drills,
            checkout().join("playbooks/drills")
        );
        let l = Lookup {
            data_dir: None,
            ..l
        };
        let e = format!("{:#}", l.resolve(false).unwrap_err());
        assert!(e.starts_with(&format!("{ENV} {}: no drills/", tmp.path().display())));
        assert!(e.contains("\nhint: "), "{e}");
    }

    #[test]
    fn nothing_found_names_every_place_searched() {
        let tmp = tempfile::tempdir().unwrap();
        let exe = tmp.path().join("bin/exhibit-drill");
        // Only meaningful where no system data directory is installed.
        assert!(SYSTEM.iter().all(|d| !Path::new(d).exists()));
        let e = format!("{:#}", lookup(&exe).resolve(false).unwrap_err());
        let mut lines = e.lines();
        assert_eq!(
            lines.next(),
            Some("no exhibit data directory (drills, profiles, YARA rules) found")
        );
        let searched = lines.next().unwrap();
        for place in [
            "--data-dir".to_string(),
            ENV.to_string(),
            tmp.path().join("share/exhibit").display().to_string(),
            tmp.path().join("bin").display().to_string(),
            SYSTEM[0].to_string(),
            SYSTEM[1].to_string(),
        ] {
            assert!(searched.contains(&place), "{place} in {searched}");
        }
        assert!(lines.next().unwrap().starts_with("hint: pass --data-dir"));
        // --drills alone is enough to list, not to run.
        let l = Lookup {
            drills: Some(tmp.path().to_path_buf()),
            ..lookup(&exe)
        };
        assert_eq!(l.resolve(false).unwrap().drills, tmp.path());
        assert!(l.resolve(true).is_err());
    }
}
