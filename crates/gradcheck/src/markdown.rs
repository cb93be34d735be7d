//! `docs/ops.md`, generated from the op table by [`ops_markdown`]: every op, its
//! gradient formula, its input domain, whether it is checked to second order, and its
//! convention at kinks, poles and ties, under a hand-written header.

use rand::rngs::StdRng;
use rand::SeedableRng;
use tapegrad::{all_ops, DType, Inputs, OpSpec};

/// The command that regenerates `docs/ops.md` (quoted by the staleness test).
pub const REGENERATE: &str = "cargo run -p tapegrad-cli -- gradcheck --markdown > docs/ops.md";

const HEADER: &str = "\
# Ops and their gradients

Every differentiable op of tapegrad, generated from the op table (`tapegrad::all_ops()`,
one row per op next to its code in `crates/tapegrad/src/ops/<family>.rs`). Do not edit
by hand; regenerate with

```sh
REGENERATE
```

A test (`crates/gradcheck/tests/ops_doc.rs`) fails when this file is stale.

In the formulas `g` is the gradient of the op's output, `x` the input (`a`, `b` for
binary ops) and `n` the number of elements reduced. Binary ops broadcast; their
gradients are summed back to each input's shape.

## Conventions at kinks, poles and ties

Where an op is not differentiable, tapegrad returns what PyTorch returns, so that
training code ported from PyTorch behaves the same:

| where | value | why |
|---|---|---|
| `relu'(0)` | `0` | the gradient passes only where `x > 0` (the rule tests the output `> 0`) |
| `abs'(0)` | `0` | the gradient is `g * sign(x)` and `sign(0) = 0` |
| `maximum(a, b)` / `minimum(a, b)` with `a == b` | `g/2` to each | ties split the gradient evenly |
| `maximum(a, b)` / `minimum(a, b)` with a NaN | value `NaN`, `g` to both inputs | neither input loses to a NaN |
| `max_dim` / `min_dim` with ties | all of `g` to the first extremal index | the index the op returns (and `argmax`) |
| `max()` / `min()` / `amax` / `amin` with ties | `g/k` to each of the `k` extremal elements | the reduction has no index to prefer |
| `clamp(x, lo, hi)` at `x == lo` or `x == hi` | `g` | the boundaries are inside the interval |
| `sqrt'(0)` | `+inf` | `g / (2 sqrt(0))`; `sqrt(x < 0) = NaN` |
| `log(0)` | `-inf`, gradient `+inf` | `log(x < 0) = NaN` |
| `0/0` | `NaN` | IEEE 754; `x/0 = ±inf`, and the gradients follow IEEE arithmetic |
| `norm(p)` / `l2_norm` at the zero vector | gradient `0`, every `p` | the subgradient PyTorch picks, instead of `0/0` |
| `std'` where the spread is 0 | `0` (and `var'` is `0`) | PyTorch masks the `0/0` of `g / (2 std)` |
| `prod` / `prod_dim` with zeros | one zero: it gets the product of the others, the rest `0`; two or more: all `0` | computed without dividing, through `cumprod` |
| `cumprod` with zeros | `revcumsum(g * out) / x` before a lane's first zero, `revcumsum(g * cumprod(x with that zero set to 1))` at it, `0` after it | PyTorch's formula; no division by zero |
| `atan2(0, 0)` | value `±0` or `±pi` (by the signs of the zeros), gradients `0` | PyTorch masks the `0/0` of `b/(a^2+b^2)` |
| `hardtanh` / `relu6` / `hardsigmoid` at their bounds | `0` | the gradient passes only strictly inside (unlike `clamp`) |
| `hardswish` at `-3` / `3` | `0` / `g` | PyTorch's branches (`x <= -3`, `x >= 3`) |
| `floor`, `ceil`, `round`, `trunc`, `sign`; `frac` | `0` everywhere; `g` everywhere | recorded, as PyTorch, so the graph stays connected |
| `pow(x, e)` at `x = 0` | base gradient `0` where `e = 0`, exponent gradient `0` where `e >= 0` | PyTorch masks the `0 * inf` of the formulas; `powf(x, 0)` likewise |

The gradient checks sample inputs from each row's domain, which keeps them away from
these points (central differences across a kink measure neither side); the conventions
themselves are pinned by known-value tests (`crates/gradcheck/tests/conventions.rs`).

## How the table is checked

`tapegrad gradcheck` and the property tests (`crates/gradcheck/tests/op_table.rs`) run
`gradcheck` in f64 (central differences, `eps = 1e-6`, `atol = 1e-5`, `rtol = 1e-3`,
full Jacobian) on every row at random shapes of rank 0 to 4, and `gradgradcheck` on the
rows marked *2nd order*. The *inputs* column gives each input's value range; rows with
a custom generator constrain their shapes (shapes drawn with seed 0 are shown).
";

/// `docs/ops.md`: the header above (conventions at kinks and poles, how the table is
/// checked) and one table row per op.
///
/// ```
/// let md = tapegrad_gradcheck::ops_markdown();
/// assert!(md.contains("| `relu` |"));
/// assert!(md.contains("relu'(0)"));
/// ```
pub fn ops_markdown() -> String {
    let mut out = HEADER.replace("REGENERATE", REGENERATE);
    out.push_str("\n## Ops\n\n");
    out.push_str("| op | inputs | gradient | 2nd order | convention |\n");
    out.push_str("|---|---|---|---|---|\n");
    for spec in all_ops() {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            spec.name,
            cell(&inputs_text(spec)),
            code(spec.gradient),
            if spec.second_order { "yes" } else { "no" },
            cell(spec.convention),
        ));
    }
    out
}

fn inputs_text(spec: &OpSpec) -> String {
    match spec.inputs {
        Inputs::Unary(d) => format!("x in {}", d.describe()),
        Inputs::Binary(a, b) => format!("a in {}, b in {} (broadcast)", a.describe(), b.describe()),
        Inputs::Custom(generate) => {
            let example = generate(&mut StdRng::seed_from_u64(0), DType::F64);
            let shapes: Vec<String> = example.iter().map(|t| format!("{:?}", t.shape())).collect();
            format!("custom generator, e.g. {}", shapes.join(", "))
        }
    }
}

/// A table cell: pipes escaped, so formulas like `|x|` do not split the row.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// A code-formatted cell (empty stays empty).
fn code(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!("`{}`", cell(text))
    }
}
