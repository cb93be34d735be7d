//! `tapegrad gradcheck`: runs the gradient checker over every op of the op table at
//! random shapes and prints one row per op: the shapes checked, the largest absolute and
//! relative errors, and pass/fail for first and second order. Exits with 1 if any op
//! fails, 2 on a usage error.

use std::io::Write;
use std::process::ExitCode;

use tapegrad::{all_ops, DType, OpSpec};
use tapegrad_gradcheck::ops::{check_op, sample_op_inputs, CheckFailure};
use tapegrad_gradcheck::{ops_markdown, Options, Report};

/// Options of `tapegrad gradcheck`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seed of the random inputs (the same seed checks the same inputs).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Random input sets (shapes and values) checked per op.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub cases: u64,
    /// Check only this op (repeat for several); see `--list` for the names.
    #[arg(long = "op", value_name = "NAME")]
    pub ops: Vec<String>,
    /// Fast mode: check random projections v·J·u instead of the full Jacobian.
    #[arg(long)]
    pub fast: bool,
    /// List the ops of the table and exit.
    #[arg(long, conflicts_with = "markdown")]
    pub list: bool,
    /// Print docs/ops.md (generated from the op table) to stdout and exit.
    #[arg(long)]
    pub markdown: bool,
}

/// The worst errors of one order over all cases of one op.
#[derive(Default)]
struct Worst {
    abs: Option<f64>,
    rel: Option<f64>,
    failed: bool,
}

impl Worst {
    fn add(&mut self, result: &Result<Report, CheckFailure>) {
        let report = match result {
            Ok(r) => Some(r),
            Err(e) => {
                self.failed = true;
                e.report()
            }
        };
        if let Some(r) = report {
            self.abs = Some(self.abs.unwrap_or(0.0).max(r.max_abs_error()));
            self.rel = Some(self.rel.unwrap_or(0.0).max(r.max_rel_error()));
        }
    }

    fn cells(&self) -> [String; 3] {
        let num = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.1e}"));
        [
            num(self.abs),
            num(self.rel),
            if self.failed { "FAIL" } else { "pass" }.to_string(),
        ]
    }
}

/// Runs the command.
pub fn run(args: &Args) -> ExitCode {
    if args.markdown {
        print!("{}", ops_markdown());
        return ExitCode::SUCCESS;
    }
    let table = all_ops();
    if args.list {
        for spec in &table {
            println!("{}", spec.name);
        }
        return ExitCode::SUCCESS;
    }
    let unknown: Vec<&String> = args
        .ops
        .iter()
        .filter(|n| !table.iter().any(|s| s.name == n.as_str()))
        .collect();
    if !unknown.is_empty() {
        eprintln!(
            "tapegrad gradcheck: no op named {} in the op table (`tapegrad gradcheck --list` lists them)",
            unknown.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
        );
        return ExitCode::from(2);
    }
    let selected: Vec<&OpSpec> = table
        .into_iter()
        .filter(|s| args.ops.is_empty() || args.ops.iter().any(|n| n == s.name))
        .collect();

    let options = if args.fast {
        Options::default().fast().with_seed(args.seed)
    } else {
        Options::default().with_seed(args.seed)
    };
    println!(
        "gradcheck of {} ops, {} case(s) each, seed {}, {} (f64, eps {:e}, atol {:e}, rtol {:e})",
        selected.len(),
        args.cases,
        args.seed,
        if args.fast {
            "fast mode (v·J·u)"
        } else {
            "full Jacobian"
        },
        options.eps,
        options.atol,
        options.rtol
    );
    println!("errors are the largest over all cases; shapes are those of the first failing case, else the largest\n");
    let header = [
        "op",
        "shapes",
        "1st abs err",
        "1st rel err",
        "1st",
        "2nd abs err",
        "2nd rel err",
        "2nd",
    ];
    let mut rows = vec![header.map(String::from).to_vec()];
    let mut failures = Vec::new();

    // Panics in ops are caught and reported by check_op; keep the default hook from
    // printing them in the middle of the table.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for spec in &selected {
        let (mut first, mut second) = (Worst::default(), spec.second_order.then(Worst::default));
        let mut shown: Option<(Vec<Vec<usize>>, bool)> = None;
        for case in 0..args.cases {
            let inputs = sample_op_inputs(spec, args.seed, case, DType::F64);
            let check = check_op(spec, &inputs, &options);
            first.add(&check.first);
            if let (Some(w), Some(r)) = (second.as_mut(), &check.second) {
                w.add(r);
            }
            let size: usize = check
                .shapes
                .iter()
                .map(|s| s.iter().product::<usize>())
                .sum();
            let replace = match &shown {
                None => true,
                Some((_, true)) => false,
                Some((s, false)) => {
                    !check.passed() || size > s.iter().map(|s| s.iter().product::<usize>()).sum()
                }
            };
            if replace {
                shown = Some((check.shapes.clone(), !check.passed()));
            }
            for (order, result) in [
                ("first", Some(&check.first)),
                ("second", check.second.as_ref()),
            ] {
                if let Some(Err(e)) = result {
                    failures.push(format!(
                        "{} ({order} order, case {case}, shapes {:?}):\n{e}",
                        spec.name, check.shapes
                    ));
                }
            }
        }
        let shapes = shown.map(|(s, _)| s).unwrap_or_default();
        let mut row = vec![
            spec.name.to_string(),
            shapes
                .iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(" "),
        ];
        row.extend(first.cells());
        row.extend(second.map_or_else(|| ["-".into(), "-".into(), "-".into()], |w| w.cells()));
        rows.push(row);
    }
    std::panic::set_hook(hook);

    let mut out = std::io::stdout().lock();
    print_table(&mut out, &rows);
    let failed_ops = rows[1..]
        .iter()
        .filter(|r| r[4] == "FAIL" || r[7] == "FAIL")
        .count();
    if failures.is_empty() {
        let _ = writeln!(out, "\nall {} ops passed", selected.len());
        ExitCode::SUCCESS
    } else {
        let _ = writeln!(out, "\n{failed_ops} of {} ops FAILED:\n", selected.len());
        for f in &failures {
            let _ = writeln!(out, "{f}");
        }
        ExitCode::FAILURE
    }
}

/// Left-aligned columns separated by two spaces, with a rule under the header.
fn print_table(out: &mut impl Write, rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for (i, row) in rows.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, &w)| format!("{cell:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
        if i == 0 {
            let _ = writeln!(
                out,
                "{}",
                widths
                    .iter()
                    .map(|&w| "-".repeat(w))
                    .collect::<Vec<_>>()
                    .join("  ")
            );
        }
    }
}
