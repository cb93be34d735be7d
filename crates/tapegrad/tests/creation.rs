//! Creation and access: constructors, dtypes, conversions, random tensors.

use tapegrad::{DType, Tensor};

#[test]
fn constructors() {
    assert_eq!(
        Tensor::zeros(&[2, 3], DType::F32).to_vec::<f32>(),
        vec![0.0; 6]
    );
    assert_eq!(Tensor::ones(&[2], DType::F64).to_vec::<f64>(), vec![1.0; 2]);
    assert_eq!(
        Tensor::full(&[2], 7.5, DType::F32).to_vec::<f32>(),
        vec![7.5; 2]
    );
    assert_eq!(
        Tensor::eye(2, DType::F64).to_vec::<f64>(),
        vec![1.0, 0.0, 0.0, 1.0]
    );
    assert_eq!(
        Tensor::linspace(0.0, 1.0, 5, DType::F64).to_vec::<f64>(),
        vec![0.0, 0.25, 0.5, 0.75, 1.0]
    );
    assert_eq!(
        Tensor::arange(5.0, 0.0, -2.0, DType::F32).to_vec::<f32>(),
        vec![5.0, 3.0, 1.0]
    );
    let s = Tensor::scalar(2.5f64);
    assert_eq!((s.rank(), s.numel(), s.item()), (0, 1, 2.5));
    let a = ndarray::array![[1.0f32, 2.0], [3.0, 4.0]];
    let t = Tensor::from(a.clone());
    assert_eq!(t.to_array::<f32>(), a.into_dyn());
}

#[test]
fn random_tensors_are_seeded() {
    let a = Tensor::randn(&[1000], DType::F32, 42);
    let b = Tensor::randn(&[1000], DType::F32, 42);
    let c = Tensor::randn(&[1000], DType::F32, 43);
    assert_eq!(a.to_vec::<f32>(), b.to_vec::<f32>());
    assert_ne!(a.to_vec::<f32>(), c.to_vec::<f32>());
    let m = a.mean().item();
    let v = a.var(&[0], true, false).item();
    assert!(m.abs() < 0.1 && (v - 1.0).abs() < 0.15, "mean {m} var {v}");
    let u = Tensor::rand_uniform(&[1000], -1.0, 3.0, DType::F64, 1).to_vec::<f64>();
    assert!(u.iter().all(|&x| (-1.0..3.0).contains(&x)));
    assert!((u.iter().sum::<f64>() / 1000.0 - 1.0).abs() < 0.15);
}

#[test]
fn dtype_conversion_round_trips() {
    let x = Tensor::from_vec(vec![0.1f64, 1e10, -3.0], &[3]);
    let y = x.to_dtype(DType::F32);
    assert_eq!(y.dtype(), DType::F32);
    assert_eq!(y.to_vec::<f32>(), vec![0.1f32, 1e10f32, -3.0]);
    assert_eq!(y.to_dtype(DType::F64).to_vec::<f64>()[2], -3.0);
}

#[test]
#[should_panic(expected = "from_vec: 5 values cannot fill shape [2, 3] (6 elements)")]
fn from_vec_wrong_length_panics() {
    let _ = Tensor::from_vec(vec![0.0f32; 5], &[2, 3]);
}

#[test]
#[should_panic(expected = "item: the tensor has shape [2]; item() needs exactly one element")]
fn item_of_vector_panics() {
    let _ = Tensor::zeros(&[2], DType::F32).item();
}

#[test]
#[should_panic(expected = "update_: the tensor is f32, not f64")]
fn update_with_wrong_dtype_panics() {
    Tensor::zeros(&[2], DType::F32).update_(|_: ndarray::ArrayViewMutD<f64>| ());
}

#[test]
fn argmax_and_argmin_of_i64_tensors() {
    // Values beyond 2^53 (not exact in f64) and ties: the first extreme wins.
    let big = (1i64 << 60) + 1;
    let x = Tensor::from_vec(vec![big, big - 1, -5, big, 7, -5, 7, 0], &[2, 4]);
    assert_eq!(x.argmax(1, false).to_vec::<i64>(), vec![0, 0]);
    assert_eq!(x.argmin(1, false).to_vec::<i64>(), vec![2, 1]);
    assert_eq!(x.argmax(0, true).to_vec::<i64>(), vec![0, 0, 1, 0]);
    assert_eq!(x.argmax(0, true).shape(), &[1, 4]);
    assert_eq!(x.argmin(-2, false).to_vec::<i64>(), vec![1, 1, 0, 1]);
}

#[test]
#[should_panic(expected = "argmax: needs a float tensor (f32 or f64), got bool [2]")]
fn argmax_of_a_bool_tensor_panics() {
    Tensor::from_vec(vec![true, false], &[2]).argmax(0, false);
}
