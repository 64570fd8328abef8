//! `--yara PATH`: loads and compiles YARA rules with yara-x, once per report.
//!
//! PATH is a rules file (any name) or a directory whose `.yar`/`.yara` files (searched
//! recursively, symlinked directories not entered) are compiled in byte order of their
//! paths. Each file gets its own namespace: its path relative to the directory without
//! the extension (`web/shells.yar` → `web/shells`), or the file stem when PATH is a file.
//! Rules are input the analyst chose but may have been handed by anyone: files are read
//! capped and non-blocking (a FIFO is refused, never waited on), `include` directives are
//! refused (so rules cannot read files outside PATH), and only the modules compiled into
//! this binary ([`MODULES`]) can be imported.

use crate::error::AnalyzeError;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// YARA modules this build of exhibit-analyze can import.
pub const MODULES: &[&str] = &["console", "elf", "hash", "math", "string", "time"];
/// Largest rules file read.
pub const MAX_RULE_FILE: u64 = 16 << 20;
/// Most rules files in a `--yara` directory.
pub const MAX_RULE_FILES: usize = 10_000;
/// Deepest directory nesting searched below a `--yara` directory.
pub const MAX_DEPTH: usize = 32;
// Compiler warnings printed before the rest are only counted.
const MAX_WARNINGS_SHOWN: usize = 5;

/// Compiled rules and where they came from.
pub struct YaraRules {
    /// The `--yara` argument.
    pub path: PathBuf,
    /// Rules files compiled, with their namespaces, in compilation order.
    pub files: Vec<(PathBuf, String)>,
    /// The compiled rules.
    pub rules: yara_x::Rules,
}

impl YaraRules {
    /// Number of compiled rules.
    pub fn rule_count(&self) -> usize {
        self.rules.iter().len()
    }
}

fn usage(what: String, hints: &[&str]) -> AnalyzeError {
    AnalyzeError::input(what, hints)
}

/// Loads and compiles the rules at `path` (exit 2 on any error, naming file and line).
pub fn load(path: &Path) -> Result<YaraRules, AnalyzeError> {
    let meta = std::fs::metadata(path).map_err(|e| {
        usage(
            format!("--yara {}: {e}", path.display()),
            &["--yara takes a .yar file or a directory of .yar/.yara files"],
        )
    })?;
    let files: Vec<(PathBuf, String)> = if meta.is_dir() {
        let mut found = Vec::new();
        collect(path, path, 0, &mut found)?;
        found.sort();
        if found.is_empty() {
            return Err(usage(
                format!(
                    "--yara {}: no .yar or .yara files in the directory",
                    path.display()
                ),
                &["--yara takes a .yar file or a directory of .yar/.yara files"],
            ));
        }
        found
            .into_iter()
            .map(|p| {
                let ns = namespace(path, &p);
                (p, ns)
            })
            .collect()
    } else {
        let ns = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "default".into());
        vec![(path.to_path_buf(), ns)]
    };

    let mut compiler = yara_x::Compiler::new();
    compiler.enable_includes(false);
    for (file, ns) in &files {
        let src = read_rules_file(file)?;
        let origin = file.display().to_string();
        compiler.new_namespace(ns);
        if let Err(e) =
            compiler.add_source(yara_x::SourceCode::from(src.as_slice()).with_origin(&origin))
        {
            return Err(compile_error(&e, &origin));
        }
    }
    let warnings = compiler.warnings();
    for w in warnings.iter().take(MAX_WARNINGS_SHOWN) {
        let (origin, line, column) = location(w.labels().next().as_ref());
        eprintln!(
            "warning: YARA rule {}:{line}:{column}: {} [{}]",
            origin.unwrap_or_default(),
            w.title(),
            w.code()
        );
    }
    if warnings.len() > MAX_WARNINGS_SHOWN {
        eprintln!(
            "warning: {} more YARA compiler warnings",
            warnings.len() - MAX_WARNINGS_SHOWN
        );
    }
    let rules = compiler.build();
    let loaded = YaraRules {
        path: path.to_path_buf(),
        files,
        rules,
    };
    if loaded.rule_count() == 0 {
        return Err(usage(
            format!("--yara {}: no YARA rules found", path.display()),
            &["the files hold no rule definitions; check that --yara names the rules you meant"],
        ));
    }
    tracing::info!(
        rules = loaded.rule_count(),
        files = loaded.files.len(),
        "YARA rules compiled"
    );
    Ok(loaded)
}

// The namespace of a file below `root`: its relative path without the extension.
fn namespace(root: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(root).unwrap_or(file).with_extension("");
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    parts.join("/")
}

fn is_rules_file(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yar") || e.eq_ignore_ascii_case("yara"))
}

fn collect(
    root: &Path,
    dir: &Path,
    depth: usize,
    out: &mut Vec<PathBuf>,
) -> Result<(), AnalyzeError> {
    let io_err = |e: std::io::Error| {
        usage(
            format!("--yara {}: {e}", dir.display()),
            &["--yara takes a .yar file or a directory of .yar/.yara files"],
        )
    };
    if depth > MAX_DEPTH {
        return Err(usage(
            format!(
                "--yara {}: directories nested deeper than {MAX_DEPTH} levels",
                root.display()
            ),
            &["point --yara at the directory that holds the rules"],
        ));
    }
    for entry in std::fs::read_dir(dir).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        let p = entry.path();
        // file_type() does not follow symlinks: a symlinked directory is not entered
        // (no loops), a symlinked file is read like a file.
        let ft = entry.file_type().map_err(io_err)?;
        if ft.is_dir() {
            collect(root, &p, depth + 1, out)?;
        } else if is_rules_file(&p) {
            out.push(p);
            if out.len() > MAX_RULE_FILES {
                return Err(usage(
                    format!(
                        "--yara {}: more than {MAX_RULE_FILES} rules files",
                        root.display()
                    ),
                    &["point --yara at a smaller directory or a single file"],
                ));
            }
        }
    }
    Ok(())
}

// Reads a rules file non-blocking and capped; anything but a regular file is refused.
fn read_rules_file(path: &Path) -> Result<Vec<u8>, AnalyzeError> {
    use rustix::fs::OFlags;
    use std::os::unix::fs::OpenOptionsExt;
    let hint = &["--yara takes a .yar file or a directory of .yar/.yara files"][..];
    let f: File = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlags::NONBLOCK | OFlags::CLOEXEC).bits() as i32)
        .open(path)
        .map_err(|e| usage(format!("--yara {}: {e}", path.display()), hint))?;
    let meta = f
        .metadata()
        .map_err(|e| usage(format!("--yara {}: {e}", path.display()), hint))?;
    if !meta.is_file() {
        return Err(usage(
            format!("--yara {}: not a regular file", path.display()),
            hint,
        ));
    }
    let mut src = Vec::new();
    f.take(MAX_RULE_FILE + 1)
        .read_to_end(&mut src)
        .map_err(|e| usage(format!("--yara {}: {e}", path.display()), hint))?;
    if src.len() as u64 > MAX_RULE_FILE {
        return Err(usage(
            format!(
                "--yara {}: over the {MAX_RULE_FILE}-byte limit for a rules file",
                path.display()
            ),
            &["split the rules into several files in one directory"],
        ));
    }
    Ok(src)
}

// (origin, line, column) of a compiler label; the compiler exposes them only through
// the label's serialized form (its type is not nameable outside yara-x).
fn location<L: serde::Serialize>(label: Option<&L>) -> (Option<String>, u64, u64) {
    let Some(label) = label else {
        return (None, 0, 0);
    };
    let v = serde_json::to_value(label).unwrap_or_default();
    (
        v["code_origin"].as_str().map(str::to_string),
        v["line"].as_u64().unwrap_or(0),
        v["column"].as_u64().unwrap_or(0),
    )
}

fn compile_error(e: &yara_x::errors::CompileError, origin: &str) -> AnalyzeError {
    let label = e.labels().next();
    let (at, line, column) = location(label.as_ref());
    let detail = label
        .as_ref()
        .map(|l| l.text().to_string())
        .filter(|t| !t.is_empty() && *t != e.title())
        .map(|t| format!(": {t}"))
        .unwrap_or_default();
    let what = format!(
        "YARA rules do not compile: {}:{line}:{column}: {}{detail} [{}]",
        at.as_deref().unwrap_or(origin),
        e.title(),
        e.code()
    );
    let mut hints = vec![format!(
        "fix the rule at that line (compiled with yara-x {}; `yr check FILE` shows the full diagnostic)",
        YARA_X_VERSION
    )];
    match e {
        yara_x::errors::CompileError::UnknownModule(_) => hints.push(format!(
            "this build of exhibit-analyze has the YARA modules {}; remove the import and the rules that use it",
            MODULES.join(", ")
        )),
        yara_x::errors::CompileError::IncludeNotAllowed(_)
        | yara_x::errors::CompileError::IncludeNotFound(_)
        | yara_x::errors::CompileError::IncludeError(_) => hints.push(
            "include directives are refused; point --yara at a directory holding every rules file instead".into(),
        ),
        _ => {}
    }
    AnalyzeError::RuleCompile { what, hints }
}

/// The yara-x version compiled in (for messages).
pub const YARA_X_VERSION: &str = "1.22";

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }

    const GOOD: &str = "rule marker : drill { meta: severity = \"critical\" strings: $a = \"EXHIBIT\" condition: $a }\n";

    #[test]
    fn a_single_file_compiles_in_its_stem_namespace() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "drills.yar", GOOD);
        let r = load(&p).unwrap();
        assert_eq!(r.rule_count(), 1);
        assert_eq!(r.files, vec![(p, "drills".to_string())]);
        let rule = r.rules.iter().next().unwrap();
        assert_eq!(rule.identifier(), "marker");
        assert_eq!(rule.namespace(), "drills");
    }

    #[test]
    fn a_directory_compiles_yar_and_yara_files_recursively_each_in_its_namespace() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "a.yar", GOOD);
        // The same rule name in another file is no conflict: another namespace.
        write(d.path(), "sub/b.YARA", GOOD);
        write(d.path(), "notes.txt", "not rules {");
        let r = load(d.path()).unwrap();
        assert_eq!(r.rule_count(), 2);
        let ns: Vec<&str> = r.files.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(ns, ["a", "sub/b"]);
        let mut got: Vec<String> = r
            .rules
            .iter()
            .map(|r| format!("{}:{}", r.namespace(), r.identifier()))
            .collect();
        got.sort();
        assert_eq!(got, ["a:marker", "sub/b:marker"]);
    }

    #[test]
    fn a_compile_error_names_file_line_and_the_compilers_message() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "a.yar", GOOD);
        let bad = write(
            d.path(),
            "b.yar",
            "rule ok { condition: true }\n\nrule broken {\n  strings: $a = \"x\"\n  condition: $b\n}\n",
        );
        let e = load(d.path()).err().expect("compile error");
        assert_eq!(e.exit_code(), 2);
        let msg = e.to_string();
        assert!(!msg.contains('\n'), "one line: {msg}");
        assert!(
            msg.starts_with(&format!("YARA rules do not compile: {}:5:", bad.display())),
            "{msg}"
        );
        assert!(msg.contains("unknown pattern"), "{msg}");
        assert!(e.hints()[0].contains("fix the rule"), "{:?}", e.hints());
    }

    #[test]
    fn a_syntax_error_names_its_line() {
        let d = tempfile::tempdir().unwrap();
        let bad = write(
            d.path(),
            "s.yar",
            "rule a {\n  condition:\n    true and\n}\n",
        );
        let e = load(&bad).err().expect("syntax error");
        let msg = e.to_string();
        assert!(msg.contains(&format!("{}:4:", bad.display())), "{msg}");
        assert!(msg.contains("syntax error"), "{msg}");
    }

    #[test]
    fn unknown_modules_and_includes_are_refused_with_hints() {
        let d = tempfile::tempdir().unwrap();
        let pe = write(
            d.path(),
            "pe.yar",
            "import \"pe\"\nrule p { condition: pe.is_pe }\n",
        );
        let e = load(&pe).err().expect("unknown module");
        assert!(e.to_string().contains("pe.yar:1:"), "{e}");
        assert!(
            e.hints().iter().any(|h| h.contains("elf, hash")),
            "{:?}",
            e.hints()
        );

        let secret = write(d.path(), "secret.txt", "rule leaked { condition: true }\n");
        let inc = write(
            d.path(),
            "inc.yar",
            &format!(
                "include \"{}\"\nrule i {{ condition: true }}\n",
                secret.display()
            ),
        );
        let e = load(&inc).err().expect("include refused");
        assert!(e.to_string().contains("inc.yar:1:"), "{e}");
        assert!(
            e.hints().iter().any(|h| h.contains("include")),
            "{:?}",
            e.hints()
        );
    }

    #[test]
    fn empty_fifo_missing_and_oversized_inputs_are_usage_errors() {
        let d = tempfile::tempdir().unwrap();
        let empty = d.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        write(&empty, "readme.md", "nothing");
        assert!(load(&empty).err().unwrap().to_string().contains("no .yar"));

        let comments = write(d.path(), "c.yar", "// no rules here\n");
        assert!(load(&comments)
            .err()
            .unwrap()
            .to_string()
            .contains("no YARA rules"));

        assert_eq!(
            load(&d.path().join("missing.yar"))
                .err()
                .unwrap()
                .exit_code(),
            2
        );

        let fifo = d.path().join("fifo.yar");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let e = load(&fifo).err().unwrap();
        assert!(e.to_string().contains("not a regular file"), "{e}");

        let big = d.path().join("big.yar");
        let f = File::create(&big).unwrap();
        f.set_len(MAX_RULE_FILE + 1).unwrap();
        assert!(load(&big).err().unwrap().to_string().contains("limit"));
    }
}
