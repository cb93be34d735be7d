//! Products: `outer`, `dot`, `addmm` and `einsum`. All are compositions of `mul`,
//! `matmul`, `diagonal`, `sum_dim`, `permute` and `reshape`, so their gradients (of any
//! order) come from those ops' rules.
//!
//! `einsum` takes repeated subscripts of one operand as a diagonal, sums each subscript
//! that no other operand and not the output needs, then contracts the operands left to
//! right, each pair as one batched `matmul` (`[batch, kept of a, summed] @ [batch, summed,
//! kept of b]`), and permutes the result into the output's order.

use std::collections::BTreeMap;

use rand::Rng;

use super::check_same_dtype;
use super::table::{random_tensor, Domain, Inputs, OpSpec};
use crate::dtype::DType;
use crate::tensor::Tensor;

impl Tensor {
    /// The outer product of two vectors: `out[i, j] = self[i] * vec2[j]`. Gradient:
    /// `g @ vec2` and `g^T @ self`. PyTorch: `torch.outer(x, vec2)`.
    ///
    /// # Panics
    /// If either input is not a vector, or dtypes differ.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let a = Tensor::from_vec(vec![1.0f32, 2.0], &[2]);
    /// let b = Tensor::from_vec(vec![3.0f32, 4.0, 5.0], &[3]);
    /// assert_eq!(a.outer(&b).to_vec::<f32>(), vec![3.0, 4.0, 5.0, 6.0, 8.0, 10.0]);
    /// ```
    #[track_caller]
    pub fn outer(&self, vec2: &Tensor) -> Tensor {
        check_same_dtype("outer", self, vec2);
        if self.rank() != 1 || vec2.rank() != 1 {
            panic!(
                "outer: expects two vectors, got shapes {:?} and {:?}",
                self.shape(),
                vec2.shape()
            );
        }
        self.unsqueeze(1).mul(&vec2.unsqueeze(0))
    }

    /// The dot product of two vectors of the same length, a 0-d tensor. Gradient:
    /// `g * other` and `g * self`. PyTorch: `torch.dot(x, other)`.
    ///
    /// # Panics
    /// If either input is not a vector, the lengths differ, or dtypes differ.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let a = Tensor::from_vec(vec![1.0f64, 2.0, 3.0], &[3]);
    /// assert_eq!(a.dot(&a).item(), 14.0);
    /// ```
    #[track_caller]
    pub fn dot(&self, other: &Tensor) -> Tensor {
        check_same_dtype("dot", self, other);
        if self.rank() != 1 || other.rank() != 1 || self.shape() != other.shape() {
            panic!(
                "dot: expects two vectors of the same length, got shapes {:?} and {:?}",
                self.shape(),
                other.shape()
            );
        }
        self.matmul(other)
    }

    /// `beta * self + alpha * (mat1 @ mat2)` for matrices `mat1: [n, m]`, `mat2: [m, p]`
    /// and `self` broadcastable to `[n, p]`. With `beta = 0` the input is ignored (its
    /// NaNs do not propagate), as in PyTorch. Gradient: `beta * g` summed to `self`'s
    /// shape, `alpha * g @ mat2^T`, `alpha * mat1^T @ g`. PyTorch:
    /// `torch.addmm(input, mat1, mat2, beta=beta, alpha=alpha)`.
    ///
    /// # Panics
    /// If `mat1` or `mat2` is not a matrix, their inner sizes differ, `self` does not
    /// broadcast to `[n, p]`, or dtypes differ.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let bias = Tensor::from_vec(vec![1.0f32, -1.0], &[2]);
    /// let a = Tensor::from_vec(vec![1.0f32, 2.0], &[1, 2]);
    /// let w = Tensor::from_vec(vec![1.0f32, 0.0, 0.0, 1.0], &[2, 2]);
    /// assert_eq!(bias.addmm(&a, &w, 1.0, 2.0).to_vec::<f32>(), vec![3.0, 3.0]);
    /// ```
    #[track_caller]
    pub fn addmm(&self, mat1: &Tensor, mat2: &Tensor, beta: f64, alpha: f64) -> Tensor {
        check_same_dtype("addmm", self, mat1);
        check_same_dtype("addmm", mat1, mat2);
        if mat1.rank() != 2 || mat2.rank() != 2 || mat1.shape()[1] != mat2.shape()[0] {
            panic!(
                "addmm: expects matrices [n, m] and [m, p], got {:?} and {:?}",
                mat1.shape(),
                mat2.shape()
            );
        }
        let out_shape = [mat1.shape()[0], mat2.shape()[1]];
        if crate::shape::broadcast_shapes(self.shape(), &out_shape).as_deref()
            != Some(&out_shape[..])
        {
            panic!(
                "addmm: the input {:?} does not broadcast to the product's shape {out_shape:?}",
                self.shape()
            );
        }
        let mut prod = mat1.matmul(mat2);
        if alpha != 1.0 {
            prod = prod.mul_scalar(alpha);
        }
        match beta {
            0.0 => prod,
            1.0 => prod.add(self),
            _ => prod.add(&self.mul_scalar(beta)),
        }
    }

    /// Einstein summation, PyTorch's `torch.einsum(equation, *operands)`. Each operand
    /// gets one subscript letter (`a`-`z`, `A`-`Z`) per axis, and `...` may stand for
    /// any number of leading (broadcast) axes. A letter repeated within one operand takes
    /// the diagonal; a letter absent from the output is summed. The output is given after
    /// `->`, or implicitly: `...` first, then the letters that appear exactly once, in
    /// alphabetical order (upper case first). Gradient: the einsum with the roles of the
    /// output and each input exchanged, obtained here through the `diagonal`, `sum_dim`,
    /// `permute`, `reshape` and `matmul` it is computed with.
    ///
    /// # Panics
    /// If the equation is malformed: a character that is not a letter, a number of
    /// subscript terms other than the number of operands, a term whose length does not
    /// match its operand's rank, an output letter absent from the inputs or repeated, one
    /// letter with two different sizes, or operands of different dtypes. The message
    /// names the bad subscript.
    ///
    /// ```
    /// use tapegrad::Tensor;
    /// let a = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], &[2, 2]);
    /// let b = Tensor::from_vec(vec![1.0f64, 0.0, 1.0, 1.0], &[2, 2]);
    /// assert_eq!(Tensor::einsum("ij,jk->ik", &[a.clone(), b.clone()]).to_vec::<f64>(), a.matmul(&b).to_vec::<f64>());
    /// assert_eq!(Tensor::einsum("ii", &[a.clone()]).item(), 5.0);
    /// assert_eq!(Tensor::einsum("ij->j", &[a]).to_vec::<f64>(), vec![4.0, 6.0]);
    /// ```
    #[track_caller]
    pub fn einsum(equation: &str, operands: &[Tensor]) -> Tensor {
        let eq = parse_einsum(equation, operands);
        for t in operands.iter().skip(1) {
            check_same_dtype("einsum", &operands[0], t);
        }
        // Letters repeated within an operand: take the diagonal until all are distinct.
        let mut terms: Vec<(Tensor, Vec<u32>)> = Vec::with_capacity(operands.len());
        for (t, labels) in operands.iter().zip(&eq.inputs) {
            let (mut t, mut labels) = (t.clone(), labels.clone());
            while let Some((p, q)) = first_repeat(&labels) {
                t = t.diagonal(0, p as isize, q as isize);
                let l = labels[p];
                labels.remove(q);
                labels.remove(p);
                labels.push(l);
            }
            terms.push((t, labels));
        }
        // Sum each label that neither the output nor any other operand needs.
        for i in 0..terms.len() {
            let needed = |l: u32| {
                eq.output.contains(&l)
                    || terms
                        .iter()
                        .enumerate()
                        .any(|(j, (_, ls))| j != i && ls.contains(&l))
            };
            let drop: Vec<usize> = (0..terms[i].1.len())
                .filter(|&p| !needed(terms[i].1[p]))
                .collect();
            if !drop.is_empty() {
                let (t, labels) = &terms[i];
                let axes: Vec<isize> = drop.iter().map(|&p| p as isize).collect();
                let t = t.sum_dim(&axes, false);
                let labels = labels
                    .iter()
                    .enumerate()
                    .filter(|(p, _)| !drop.contains(p))
                    .map(|(_, &l)| l)
                    .collect();
                terms[i] = (t, labels);
            }
        }
        let mut rest = terms.into_iter();
        let (mut acc, mut acc_labels) = rest.next().expect("at least one operand");
        let later: Vec<(Tensor, Vec<u32>)> = rest.collect();
        for (k, (b, b_labels)) in later.iter().enumerate() {
            let kept = |l: u32| {
                eq.output.contains(&l) || later[k + 1..].iter().any(|(_, ls)| ls.contains(&l))
            };
            (acc, acc_labels) = contract(&acc, &acc_labels, b, b_labels, &kept, &eq.sizes);
        }
        // Whatever the output does not list is summed (an ellipsis absent from it).
        let drop: Vec<isize> = (0..acc_labels.len())
            .filter(|&p| !eq.output.contains(&acc_labels[p]))
            .map(|p| p as isize)
            .collect();
        if !drop.is_empty() {
            acc = acc.sum_dim(&drop, false);
            acc_labels.retain(|l| eq.output.contains(l));
        }
        // Broadcast ellipsis axes that stayed at size 1 in every operand that had them.
        let mut shape: Vec<usize> = acc.shape().to_vec();
        for (p, l) in acc_labels.iter().enumerate() {
            shape[p] = eq.sizes[l];
        }
        if shape != acc.shape() {
            acc = acc.broadcast_to(&shape);
        }
        let perm: Vec<usize> = eq
            .output
            .iter()
            .map(|l| {
                acc_labels
                    .iter()
                    .position(|m| m == l)
                    .expect("output label")
            })
            .collect();
        acc.permute(&perm)
    }
}

/// Labels: a letter is its character code; ellipsis axis `k` (counted from the first of
/// the widest ellipsis) is `ELLIPSIS + k`.
const ELLIPSIS: u32 = 1 << 16;

struct Equation {
    inputs: Vec<Vec<u32>>,
    output: Vec<u32>,
    /// The size of each label (the largest, for broadcast ellipsis axes).
    sizes: BTreeMap<u32, usize>,
}

/// The positions of the first label that appears twice.
fn first_repeat(labels: &[u32]) -> Option<(usize, usize)> {
    (0..labels.len()).find_map(|p| {
        labels[p + 1..]
            .iter()
            .position(|&l| l == labels[p])
            .map(|q| (p, p + 1 + q))
    })
}

/// One term's letters, and whether (and where) it has an ellipsis.
#[track_caller]
fn parse_term(equation: &str, term: &str) -> (Vec<u32>, Option<usize>) {
    let mut letters = Vec::new();
    let mut ellipsis = None;
    let mut rest = term;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("...") {
            if ellipsis.is_some() {
                panic!("einsum: the subscript term \"{term}\" of \"{equation}\" has more than one \"...\"");
            }
            ellipsis = Some(letters.len());
            rest = after;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            panic!(
                "einsum: invalid subscript '{c}' in \"{equation}\" (subscripts are letters a-z, A-Z, or \"...\")"
            );
        }
        letters.push(c as u32);
        rest = &rest[c.len_utf8()..];
    }
    (letters, ellipsis)
}

#[track_caller]
fn parse_einsum(equation: &str, operands: &[Tensor]) -> Equation {
    let compact: String = equation.chars().filter(|c| !c.is_whitespace()).collect();
    let (lhs, rhs) = match compact.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (compact.as_str(), None),
    };
    let terms: Vec<&str> = lhs.split(',').collect();
    if operands.is_empty() || terms.len() != operands.len() {
        panic!(
            "einsum: \"{equation}\" has {} operand subscript term(s) but {} tensor(s) were given",
            terms.len(),
            operands.len()
        );
    }
    let parsed: Vec<(Vec<u32>, Option<usize>)> =
        terms.iter().map(|t| parse_term(equation, t)).collect();
    let mut widest = 0;
    for (i, ((letters, ell), t)) in parsed.iter().zip(operands).enumerate() {
        let fits = match ell {
            None => letters.len() == t.rank(),
            Some(_) => letters.len() <= t.rank(),
        };
        if !fits {
            panic!(
                "einsum: the subscripts \"{}\" of operand {i} in \"{equation}\" do not match its rank {} (shape {:?})",
                terms[i],
                t.rank(),
                t.shape()
            );
        }
        if ell.is_some() {
            widest = widest.max(t.rank() - letters.len());
        }
    }
    let mut sizes: BTreeMap<u32, usize> = BTreeMap::new();
    let mut inputs = Vec::with_capacity(operands.len());
    for (i, ((letters, ell), t)) in parsed.iter().zip(operands).enumerate() {
        let mut labels = letters.clone();
        if let Some(at) = *ell {
            let e = t.rank() - letters.len();
            let ids = (widest - e..widest).map(|k| ELLIPSIS + k as u32);
            labels.splice(at..at, ids);
        }
        for (&l, &n) in labels.iter().zip(t.shape()) {
            match sizes.get(&l).copied() {
                None => {
                    sizes.insert(l, n);
                }
                Some(m) if m == n => {}
                Some(m) if l >= ELLIPSIS && (m == 1 || n == 1) => {
                    sizes.insert(l, m.max(n));
                }
                Some(m) => {
                    let name = if l >= ELLIPSIS {
                        "...".to_string()
                    } else {
                        char::from_u32(l).expect("letter").to_string()
                    };
                    panic!(
                        "einsum: subscript '{name}' of \"{equation}\" has size {m} in one place and {n} in operand {i} (shape {:?})",
                        t.shape()
                    );
                }
            }
        }
        inputs.push(labels);
    }
    let ellipsis_ids: Vec<u32> = (0..widest).map(|k| ELLIPSIS + k as u32).collect();
    let output = match rhs {
        Some(r) => {
            let (letters, ell) = parse_term(equation, r);
            for (p, &l) in letters.iter().enumerate() {
                let c = char::from_u32(l).expect("letter");
                if !sizes.contains_key(&l) {
                    panic!("einsum: output subscript '{c}' of \"{equation}\" does not appear in any input");
                }
                if letters[..p].contains(&l) {
                    panic!(
                        "einsum: output subscript '{c}' of \"{equation}\" appears more than once"
                    );
                }
            }
            let mut out = letters;
            if let Some(at) = ell {
                out.splice(at..at, ellipsis_ids);
            }
            out
        }
        None => {
            let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
            for l in inputs.iter().flatten().filter(|&&l| l < ELLIPSIS) {
                *counts.entry(*l).or_default() += 1;
            }
            let mut out = ellipsis_ids;
            out.extend(counts.into_iter().filter(|&(_, n)| n == 1).map(|(l, _)| l));
            out
        }
    };
    Equation {
        inputs,
        output,
        sizes,
    }
}

/// Contracts `a` (labels `la`) with `b` (labels `lb`): labels in both that `kept` says
/// are needed later become batch axes, the other shared ones are summed, and the result's
/// labels are `[batch, only in a, only in b]`.
fn contract(
    a: &Tensor,
    la: &[u32],
    b: &Tensor,
    lb: &[u32],
    kept: &dyn Fn(u32) -> bool,
    sizes: &BTreeMap<u32, usize>,
) -> (Tensor, Vec<u32>) {
    let batch: Vec<u32> = la
        .iter()
        .copied()
        .filter(|l| lb.contains(l) && kept(*l))
        .collect();
    let summed: Vec<u32> = la
        .iter()
        .copied()
        .filter(|l| lb.contains(l) && !kept(*l))
        .collect();
    let a_only: Vec<u32> = la.iter().copied().filter(|l| !lb.contains(l)).collect();
    let b_only: Vec<u32> = lb.iter().copied().filter(|l| !la.contains(l)).collect();
    // Shared ellipsis axes of size 1 on one side broadcast to the other's size.
    let widen = |t: &Tensor, ls: &[u32]| {
        let shape: Vec<usize> = ls
            .iter()
            .zip(t.shape())
            .map(|(l, &n)| {
                if lb.contains(l) && la.contains(l) {
                    sizes[l]
                } else {
                    n
                }
            })
            .collect();
        if shape == t.shape() {
            t.clone()
        } else {
            t.broadcast_to(&shape)
        }
    };
    let (a, b) = (widen(a, la), widen(b, lb));
    let mut actual: BTreeMap<u32, usize> = BTreeMap::new();
    actual.extend(la.iter().copied().zip(a.shape().iter().copied()));
    actual.extend(lb.iter().copied().zip(b.shape().iter().copied()));
    let arrange = |t: &Tensor, ls: &[u32], order: &[&[u32]]| {
        let perm: Vec<usize> = order
            .iter()
            .flat_map(|group| group.iter())
            .map(|l| ls.iter().position(|m| m == l).expect("label of operand"))
            .collect();
        let t = t.permute(&perm);
        let dims: Vec<usize> = order
            .iter()
            .map(|group| group.iter().map(|l| actual[l]).product())
            .collect();
        t.reshape_to(&dims)
    };
    let a3 = arrange(&a, la, &[&batch[..], &a_only[..], &summed[..]]);
    let b3 = arrange(&b, lb, &[&batch[..], &summed[..], &b_only[..]]);
    let mut out_shape: Vec<usize> = Vec::new();
    let mut labels: Vec<u32> = Vec::new();
    for l in batch.iter().chain(&a_only).chain(&b_only) {
        out_shape.push(actual[l]);
        labels.push(*l);
    }
    (a3.matmul(&b3).reshape_to(&out_shape), labels)
}

// ---------------------------------------------------------------- op table rows

fn vectors(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    let (n, m) = (rng.gen_range(1..=4), rng.gen_range(1..=4));
    vec![
        random_tensor(rng, &[n], Domain::Real, dtype),
        random_tensor(rng, &[m], Domain::Real, dtype),
    ]
}

fn same_vectors(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    let n = rng.gen_range(1..=4);
    vec![
        random_tensor(rng, &[n], Domain::Real, dtype),
        random_tensor(rng, &[n], Domain::Real, dtype),
    ]
}

fn addmm_inputs(rng: &mut rand::rngs::StdRng, dtype: DType) -> Vec<Tensor> {
    let (n, m, p) = (
        rng.gen_range(1..=3),
        rng.gen_range(1..=3),
        rng.gen_range(1..=3),
    );
    let input: Vec<usize> = match rng.gen_range(0..3) {
        0 => vec![n, p],
        1 => vec![p],
        _ => vec![1, p],
    };
    vec![
        random_tensor(rng, &input, Domain::Real, dtype),
        random_tensor(rng, &[n, m], Domain::Real, dtype),
        random_tensor(rng, &[m, p], Domain::Real, dtype),
    ]
}

/// Random tensors of the given shapes, whose sizes are letters looked up in `dims`.
fn shaped(rng: &mut rand::rngs::StdRng, dtype: DType, shapes: &[&str]) -> Vec<Tensor> {
    let mut dims = BTreeMap::new();
    shapes
        .iter()
        .map(|s| {
            let shape: Vec<usize> = s
                .chars()
                .map(|c| *dims.entry(c).or_insert_with(|| rng.gen_range(1..=3)))
                .collect();
            random_tensor(rng, &shape, Domain::Real, dtype)
        })
        .collect()
}

/// The rows of the op table for this family.
pub(crate) const ROWS: &[OpSpec] = &[
    OpSpec::new(
        "outer",
        Inputs::Custom(vectors),
        |x| x[0].outer(&x[1]),
        "g@v2, g^T@v1",
    ),
    OpSpec::new(
        "dot",
        Inputs::Custom(same_vectors),
        |x| x[0].dot(&x[1]),
        "g*b, g*a",
    ),
    OpSpec::new(
        "addmm",
        Inputs::Custom(addmm_inputs),
        |x| x[0].addmm(&x[1], &x[2], 0.5, -1.5),
        "beta*g (summed to input), alpha*g@m2^T, alpha*m1^T@g",
    ),
    OpSpec::new(
        "einsum",
        Inputs::Custom(|rng, dt| shaped(rng, dt, &["ij", "jk"])),
        |x| Tensor::einsum("ij,jk->ik", x),
        "ij,jk->ik: g@b^T, a^T@g",
    ),
    OpSpec::new(
        "einsum(bij,bkj->bki)",
        Inputs::Custom(|rng, dt| shaped(rng, dt, &["bij", "bkj"])),
        |x| Tensor::einsum("bij,bkj->bki", x),
        "batched: einsum of g with the other operand",
    ),
    OpSpec::new(
        "einsum(ii->i)",
        Inputs::Custom(|rng, dt| shaped(rng, dt, &["ii"])),
        |x| Tensor::einsum("ii->i", x),
        "g placed on the diagonal",
    ),
    OpSpec::new(
        "einsum(ii)",
        Inputs::Custom(|rng, dt| shaped(rng, dt, &["ii"])),
        |x| Tensor::einsum("ii", x),
        "trace: g * identity",
    ),
    OpSpec::new(
        "einsum(i,j)",
        Inputs::Custom(|rng, dt| shaped(rng, dt, &["i", "j"])),
        |x| Tensor::einsum("i,j", x),
        "outer product (implicit output ij)",
    ),
    OpSpec::new(
        "einsum(iij,jk,k->ki)",
        Inputs::Custom(|rng, dt| shaped(rng, dt, &["iij", "jk", "k"])),
        |x| Tensor::einsum("iij,jk,k->ki", x),
        "three operands, a diagonal and two contractions",
    ),
    OpSpec::new(
        "einsum(...ij,...jk)",
        Inputs::Custom(|rng, dt| {
            let b = rng.gen_range(2..=3);
            let mut t = shaped(rng, dt, &["ij", "jk"]);
            let (a, c) = (t.remove(0), t.remove(0));
            let (sa, sc) = (a.shape().to_vec(), c.shape().to_vec());
            vec![
                random_tensor(rng, &[b, 1, sa[0], sa[1]], Domain::Real, dt),
                random_tensor(rng, &[2, sc[0], sc[1]], Domain::Real, dt),
            ]
        }),
        |x| Tensor::einsum("...ij,...jk", x),
        "broadcast batch: g@b^T, a^T@g summed over broadcast axes",
    ),
    OpSpec::new(
        "einsum(bhqd,bhkd->bhqk)",
        Inputs::Custom(|rng, dt| shaped(rng, dt, &["bhqd", "bhkd"])),
        |x| Tensor::einsum("bhqd,bhkd->bhqk", x),
        "attention scores: batched g@k, g^T@q",
    ),
];

#[cfg(test)]
mod tests {
    use crate::{DType, Tensor};

    fn close(a: &Tensor, b: &Tensor) {
        assert_eq!(a.shape(), b.shape());
        for (x, y) in a.to_vec::<f64>().iter().zip(b.to_vec::<f64>()) {
            assert!((x - y).abs() < 1e-12, "{x} vs {y}");
        }
    }

    #[test]
    fn einsum_agrees_with_the_direct_ops() {
        let a = Tensor::randn(&[2, 3, 4], DType::F64, 1);
        let b = Tensor::randn(&[2, 4, 5], DType::F64, 2);
        close(
            &Tensor::einsum("bij,bjk->bik", &[a.clone(), b.clone()]),
            &a.matmul(&b),
        );
        close(
            &Tensor::einsum("bij->jib", std::slice::from_ref(&a)),
            &a.permute(&[2, 1, 0]),
        );
        close(
            &Tensor::einsum("bij->", std::slice::from_ref(&a)),
            &a.sum().reshape_to(&[]),
        );
        // Implicit output: the letters that appear once (i, k); b and j appear twice and
        // are summed, as in PyTorch.
        close(
            &Tensor::einsum("bij,bjk", &[a.clone(), b.clone()]),
            &a.matmul(&b).sum_dim(&[0], false),
        );
        let m = Tensor::randn(&[3, 3], DType::F64, 3);
        close(
            &Tensor::einsum("ii->i", std::slice::from_ref(&m)),
            &m.diagonal(0, 0, 1),
        );
        close(&Tensor::einsum("ij->ji", std::slice::from_ref(&m)), &m.t());
        close(&Tensor::einsum("ji", std::slice::from_ref(&m)), &m.t());
        let v = Tensor::randn(&[3], DType::F64, 4);
        close(
            &Tensor::einsum("i,i->", &[v.clone(), v.clone()]),
            &v.dot(&v),
        );
        close(
            &Tensor::einsum("ij,j->i", &[m.clone(), v.clone()]),
            &m.matmul(&v),
        );
    }

    #[test]
    fn einsum_broadcasts_ellipsis() {
        let a = Tensor::randn(&[2, 1, 3, 4], DType::F64, 5);
        let b = Tensor::randn(&[5, 4, 2], DType::F64, 6);
        let y = Tensor::einsum("...ij,...jk->...ik", &[a.clone(), b.clone()]);
        assert_eq!(y.shape(), &[2, 5, 3, 2]);
        close(&y, &a.matmul(&b));
        // An ellipsis left out of an explicit output is summed.
        close(
            &Tensor::einsum("...ij->ij", std::slice::from_ref(&a)),
            &a.sum_dim(&[0, 1], false),
        );
    }

    #[test]
    fn einsum_gradient_of_a_trace_and_known_values() {
        let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0], &[2, 2]).requires_grad();
        let y = Tensor::einsum("ij,ji->", &[x.clone(), x.clone()]);
        // trace(x @ x) = 1 + 2*2*3 + 16 = 29; d/dx = 2 x^T.
        assert_eq!(y.item(), 29.0);
        let g = y.backward();
        assert_eq!(g[&x].to_vec::<f64>(), vec![2.0, 6.0, 4.0, 8.0]);
    }

    #[test]
    #[should_panic(expected = "einsum: invalid subscript '1' in \"i1,jk\"")]
    fn einsum_bad_character_panics() {
        let m = Tensor::zeros(&[2, 2], DType::F32);
        let _ = Tensor::einsum("i1,jk", &[m.clone(), m]);
    }

    #[test]
    #[should_panic(
        expected = "einsum: output subscript 'z' of \"ij->z\" does not appear in any input"
    )]
    fn einsum_unknown_output_panics() {
        let _ = Tensor::einsum("ij->z", &[Tensor::zeros(&[2, 2], DType::F32)]);
    }

    #[test]
    #[should_panic(
        expected = "einsum: subscript 'j' of \"ij,jk->ik\" has size 3 in one place and 4 in operand 1"
    )]
    fn einsum_size_mismatch_panics() {
        let _ = Tensor::einsum(
            "ij,jk->ik",
            &[
                Tensor::zeros(&[2, 3], DType::F32),
                Tensor::zeros(&[4, 2], DType::F32),
            ],
        );
    }

    #[test]
    #[should_panic(
        expected = "einsum: the subscripts \"ijk\" of operand 0 in \"ijk\" do not match its rank 2"
    )]
    fn einsum_rank_mismatch_panics() {
        let _ = Tensor::einsum("ijk", &[Tensor::zeros(&[2, 3], DType::F32)]);
    }

    #[test]
    fn addmm_with_beta_zero_ignores_nan() {
        let input = Tensor::full(&[2, 2], f64::NAN, DType::F64);
        let e = Tensor::eye(2, DType::F64);
        let y = input.addmm(&e, &e, 0.0, 3.0);
        assert_eq!(y.to_vec::<f64>(), vec![3.0, 0.0, 0.0, 3.0]);
    }
}
