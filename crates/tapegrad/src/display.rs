//! `Display` and `Debug` for tensors, printed the way PyTorch prints them.

use std::fmt;

use crate::dtype::DType;
use crate::tensor::Tensor;

/// Above this many elements only the first and last three of each axis are printed.
const SUMMARY_THRESHOLD: usize = 1000;
const EDGE_ITEMS: usize = 3;

enum Style {
    Integer,
    Fixed,
    Scientific,
}

fn choose_style(values: &[f64]) -> Style {
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.iter().all(|v| v.fract() == 0.0) && finite.iter().all(|v| v.abs() < 1e8) {
        return Style::Integer;
    }
    let max = finite.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let min = finite
        .iter()
        .filter(|v| **v != 0.0)
        .fold(f64::INFINITY, |m, v| m.min(v.abs()));
    if max >= 1e8
        || (min.is_finite() && min < 1e-4)
        || (min.is_finite() && max / min > 1e3 && max > 1e3)
    {
        Style::Scientific
    } else {
        Style::Fixed
    }
}

fn format_value(v: f64, style: &Style) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    match style {
        Style::Integer => format!("{v:.0}."),
        Style::Fixed => format!("{v:.4}"),
        Style::Scientific => format!("{v:.4e}"),
    }
}

/// Indices printed along an axis of length `n` (`None` marks the "..." gap).
fn shown(n: usize, summarise: bool) -> Vec<Option<usize>> {
    if summarise && n > 2 * EDGE_ITEMS {
        let mut v: Vec<Option<usize>> = (0..EDGE_ITEMS).map(Some).collect();
        v.push(None);
        v.extend((n - EDGE_ITEMS..n).map(Some));
        v
    } else {
        (0..n).map(Some).collect()
    }
}

fn write_nested(
    out: &mut String,
    cells: &[String],
    shape: &[usize],
    strides: &[usize],
    offset: usize,
    indent: usize,
    summarise: bool,
) {
    if shape.is_empty() {
        out.push_str(&cells[offset]);
        return;
    }
    out.push('[');
    let idx = shown(shape[0], summarise);
    for (k, i) in idx.iter().enumerate() {
        if k > 0 {
            out.push(',');
            if shape.len() == 1 {
                out.push(' ');
            } else {
                out.push_str(&"\n".repeat(shape.len() - 1));
                out.push_str(&" ".repeat(indent + 1));
            }
        }
        match i {
            Some(i) => write_nested(
                out,
                cells,
                &shape[1..],
                &strides[1..],
                offset + i * strides[0],
                indent + 1,
                summarise,
            ),
            None => out.push_str("..."),
        }
    }
    out.push(']');
}

impl fmt::Display for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shape = self.shape().to_vec();
        let mut cells: Vec<String> = match self.dtype() {
            DType::Bool => self
                .to_vec::<bool>()
                .iter()
                .map(|&b| if b { "True" } else { "False" }.to_string())
                .collect(),
            DType::I64 => self.to_vec::<i64>().iter().map(|v| v.to_string()).collect(),
            DType::F32 | DType::F64 => {
                let values = self.to_vec::<f64>();
                let style = choose_style(&values);
                values.iter().map(|&v| format_value(v, &style)).collect()
            }
        };
        let summarise = cells.len() > SUMMARY_THRESHOLD;
        let width = cells.iter().map(|c| c.len()).max().unwrap_or(0);
        for c in cells.iter_mut() {
            *c = format!("{c:>width$}");
        }
        let mut strides = vec![1usize; shape.len()];
        for i in (0..shape.len().saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * shape[i + 1];
        }
        let prefix = "tensor(";
        let mut body = String::new();
        if cells.is_empty() {
            body.push_str("[]");
        } else {
            write_nested(
                &mut body,
                &cells,
                &shape,
                &strides,
                0,
                prefix.len(),
                summarise,
            );
        }
        let mut extras = Vec::new();
        if cells.is_empty() {
            extras.push(format!("size={shape:?}"));
        }
        if self.dtype() == DType::F64 {
            extras.push("dtype=f64".to_string());
        }
        if let Some(op) = self.op_name() {
            extras.push(format!("grad_fn=<{op}>"));
        } else if self.tracks_grad() {
            extras.push("requires_grad=true".to_string());
        }
        write!(f, "{prefix}{body}")?;
        for e in extras {
            write!(f, ", {e}")?;
        }
        write!(f, ")")
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Tensor {{ id: {}, shape: {:?}, dtype: {}",
            self.id().as_u64(),
            self.shape(),
            self.dtype()
        )?;
        if let Some(op) = self.op_name() {
            write!(f, ", grad_fn: {op}")?;
        } else if self.tracks_grad() {
            write!(f, ", requires_grad: true")?;
        }
        write!(f, ", data: {self} }}")
    }
}

#[cfg(test)]
mod tests {
    use crate::{DType, Tensor};

    #[test]
    fn prints_like_pytorch() {
        let t = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]);
        assert_eq!(t.to_string(), "tensor([[1., 2.],\n        [3., 4.]])");
        let t = Tensor::from_vec(vec![0.5f64, -1.25], &[2]).requires_grad();
        assert_eq!(
            t.to_string(),
            "tensor([ 0.5000, -1.2500], dtype=f64, requires_grad=true)"
        );
        assert_eq!(Tensor::scalar(3.0f32).to_string(), "tensor(3.)");
        assert_eq!(
            Tensor::zeros(&[0], DType::F32).to_string(),
            "tensor([], size=[0])"
        );
    }

    #[test]
    fn prints_integers_and_bools_like_pytorch() {
        let t = Tensor::from_vec(vec![1i64, 0, 3], &[3]);
        assert_eq!(t.to_string(), "tensor([1, 0, 3])");
        let t = Tensor::from_vec(vec![10i64, -2, 3, 4], &[2, 2]);
        assert_eq!(t.to_string(), "tensor([[10, -2],\n        [ 3,  4]])");
        let b = Tensor::from_vec(vec![true, false], &[2]);
        assert_eq!(b.to_string(), "tensor([ True, False])");
        assert_eq!(Tensor::scalar(true).to_string(), "tensor(True)");
        let debug = format!("{:?}", Tensor::scalar(5i64));
        assert!(debug.ends_with("dtype: i64, data: tensor(5) }"), "{debug}");
    }

    #[test]
    fn summarises_large_tensors() {
        let t = Tensor::arange(0.0, 2000.0, 1.0, DType::F32);
        let s = t.to_string();
        assert!(
            s.starts_with("tensor([   0.,    1.,    2., ..., 1997., 1998., 1999.]"),
            "{s}"
        );
    }
}
