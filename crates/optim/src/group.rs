//! Parameter groups (`ParamGroup`: parameters sharing one set of hyper-parameters) and
//! `Core`, the bookkeeping every optimiser shares: iterating parameters that have a
//! gradient, per-parameter state, learning rates, and state save/load with validation.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tapegrad::{Grads, Tensor};
use tapegrad_nn::Param;

use crate::error::OptimError;
use crate::state::{GroupRecord, ParamRecord, StateDict};

/// The hyper-parameters of one parameter group (an optimiser's config struct).
pub trait Hyper: Clone + Debug + Serialize + DeserializeOwned {
    /// The learning rate.
    fn lr(&self) -> f64;
    /// Sets the learning rate (what schedules do).
    fn set_lr(&mut self, lr: f64);
    /// The weight decay coefficient.
    fn weight_decay(&self) -> f64;
    /// An error naming the optimiser and the first out-of-range value, as PyTorch's
    /// constructors raise `ValueError` (a NaN is out of every range).
    fn check(&self) -> Result<(), String>;
    /// Panics with [`check`](Self::check)'s message: the constructors' check.
    #[track_caller]
    fn validate(&self) {
        if let Err(message) = self.check() {
            panic!("{message}");
        }
    }
}

/// `ensure!(cond, "format", args)`: returns `Err(message)` from a `check` unless `cond`.
macro_rules! ensure {
    ($cond:expr, $($message:tt)+) => {
        // A comparison with NaN is false, so NaN never passes.
        let holds: bool = $cond;
        if !holds {
            return Err(format!($($message)+));
        }
    };
}
pub(crate) use ensure;

/// Parameters that share one set of hyper-parameters, e.g. "weights, with decay" and
/// "biases and norms, without", as PyTorch's parameter groups.
///
/// ```
/// use tapegrad::{DType, Tensor};
/// use tapegrad_nn::Param;
/// use tapegrad_optim::{AdamW, AdamWConfig, Optimizer, ParamGroup};
/// let w = Param::new(Tensor::ones(&[4, 3], DType::F32));
/// let b = Param::new(Tensor::zeros(&[3], DType::F32));
/// let opt = AdamW::with_groups(vec![
///     ParamGroup::new([w], AdamWConfig::default()),
///     ParamGroup::new([b], AdamWConfig { weight_decay: 0.0, ..AdamWConfig::default() }),
/// ]);
/// assert_eq!(opt.num_groups(), 2);
/// assert_eq!(opt.groups()[1].hyper.weight_decay, 0.0);
/// ```
#[derive(Clone, Debug)]
pub struct ParamGroup<H> {
    /// The parameters.
    pub params: Vec<Param>,
    /// Their names (`None` when built without names); used in error messages and saved
    /// with the state, where a name that differs on load is an error.
    pub names: Vec<Option<String>>,
    /// The group's hyper-parameters.
    pub hyper: H,
}

impl<H> ParamGroup<H> {
    /// A group of unnamed parameters.
    pub fn new(params: impl IntoIterator<Item = Param>, hyper: H) -> Self {
        let params: Vec<Param> = params.into_iter().collect();
        let names = vec![None; params.len()];
        ParamGroup {
            params,
            names,
            hyper,
        }
    }

    /// A group of named parameters, e.g. from `Module::named_params()`.
    pub fn named(named: impl IntoIterator<Item = (String, Param)>, hyper: H) -> Self {
        let (names, params): (Vec<_>, Vec<_>) =
            named.into_iter().map(|(n, p)| (Some(n), p)).unzip();
        ParamGroup {
            params,
            names,
            hyper,
        }
    }
}

/// Per-parameter optimiser state that can be saved and restored.
pub(crate) trait ParamState: Sized {
    fn save(&self, rec: &mut ParamRecord);
    /// Rebuilds the state, checking every buffer against `param`; `what` names the
    /// parameter in errors.
    fn load(rec: &ParamRecord, param: &Tensor, what: &str) -> Result<Self, OptimError>;
}

/// The bookkeeping shared by every optimiser.
#[derive(Debug)]
pub(crate) struct Core<H, S> {
    pub(crate) name: &'static str,
    pub(crate) groups: Vec<ParamGroup<H>>,
    /// State by parameter index (group 0 first), created lazily at a parameter's first step.
    pub(crate) state: Vec<Option<S>>,
}

impl<H: Hyper, S: ParamState> Core<H, S> {
    #[track_caller]
    pub(crate) fn new(name: &'static str, groups: Vec<ParamGroup<H>>) -> Self {
        let mut seen = HashSet::new();
        for (g, group) in groups.iter().enumerate() {
            assert_eq!(
                group.params.len(),
                group.names.len(),
                "{name}: group {g} has {} parameters but {} names",
                group.params.len(),
                group.names.len()
            );
            group.hyper.validate();
            for p in &group.params {
                assert!(
                    seen.insert(p.id()),
                    "{name}: a parameter appears more than once in the parameter groups"
                );
            }
        }
        let n = groups.iter().map(|g| g.params.len()).sum();
        let state = (0..n).map(|_| None).collect();
        Core {
            name,
            groups,
            state,
        }
    }

    /// Calls `f(hyper, param, grad, state, what)` for every parameter that has a
    /// gradient in `grads` (a parameter without one is skipped, as PyTorch skips
    /// `grad is None`), after checking the gradient's shape and dtype.
    ///
    /// # Panics
    /// If a gradient's shape or dtype differs from its parameter's.
    pub(crate) fn for_each(
        &mut self,
        grads: &Grads,
        mut f: impl FnMut(&H, &Param, &Tensor, &mut Option<S>),
    ) {
        let mut index = 0;
        for group in &self.groups {
            for (p, name) in group.params.iter().zip(&group.names) {
                let state = &mut self.state[index];
                index += 1;
                let Some(grad) = grads.get_id(p.id()) else {
                    continue;
                };
                if grad.shape() != p.shape() || grad.dtype() != p.dtype() {
                    panic!(
                        "{}::step: the gradient of parameter {} ({}) is {:?} {} but the parameter is {:?} {}",
                        self.name,
                        index - 1,
                        name.as_deref().unwrap_or("unnamed"),
                        grad.shape(),
                        grad.dtype(),
                        p.shape(),
                        p.dtype()
                    );
                }
                if grad.id() == p.id() {
                    // The gradient is the parameter itself: read it through a separate
                    // handle (the in-place update then copies on write) rather than
                    // locking one tensor twice.
                    f(&group.hyper, p, &grad.detach(), state);
                } else {
                    f(&group.hyper, p, grad, state);
                }
            }
        }
    }

    #[track_caller]
    pub(crate) fn group(&self, group: usize) -> &ParamGroup<H> {
        match self.groups.get(group) {
            Some(g) => g,
            None => panic!(
                "{}: group {group} out of range ({} groups)",
                self.name,
                self.groups.len()
            ),
        }
    }

    #[track_caller]
    pub(crate) fn set_group_lr(&mut self, group: usize, lr: f64) {
        assert!(lr >= 0.0, "{}: learning rate {lr} is negative", self.name);
        let n = self.groups.len();
        match self.groups.get_mut(group) {
            Some(g) => g.hyper.set_lr(lr),
            None => panic!("{}: group {group} out of range ({n} groups)", self.name),
        }
    }

    #[track_caller]
    pub(crate) fn add_group(&mut self, group: ParamGroup<H>) {
        let mut groups = std::mem::take(&mut self.groups);
        groups.push(group);
        let rebuilt = Core::<H, S>::new(self.name, groups);
        self.groups = rebuilt.groups;
        self.state.resize_with(rebuilt.state.len(), || None);
    }

    pub(crate) fn params(&self) -> Vec<Param> {
        self.groups
            .iter()
            .flat_map(|g| g.params.iter().cloned())
            .collect()
    }

    fn describe(&self, index: usize) -> String {
        let mut i = index;
        for g in &self.groups {
            if i < g.params.len() {
                return match &g.names[i] {
                    Some(n) => format!("parameter {index} ({n})"),
                    None => format!("parameter {index}"),
                };
            }
            i -= g.params.len();
        }
        format!("parameter {index}")
    }

    pub(crate) fn state_dict(&self) -> StateDict {
        let mut index = 0;
        let groups = self
            .groups
            .iter()
            .map(|g| {
                let params = (index..index + g.params.len()).collect();
                index += g.params.len();
                GroupRecord {
                    hyper: serde_json::to_value(&g.hyper).expect("hyper-parameters serialise"),
                    params,
                    names: g.names.clone(),
                }
            })
            .collect();
        let state = self
            .state
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.as_ref().map(|s| {
                    let mut rec = ParamRecord::default();
                    s.save(&mut rec);
                    (i, rec)
                })
            })
            .collect();
        StateDict {
            optimizer: self.name.to_string(),
            groups,
            state,
        }
    }

    /// Validates everything first, then replaces hyper-parameters and state: never a
    /// partial load.
    pub(crate) fn load_state_dict(&mut self, sd: &StateDict) -> Result<(), OptimError> {
        if sd.optimizer != self.name {
            return Err(OptimError::mismatch(format!(
                "the state is for {}, this optimiser is {}",
                sd.optimizer, self.name
            )));
        }
        if sd.groups.len() != self.groups.len() {
            return Err(OptimError::mismatch(format!(
                "the state has {} parameter groups, this optimiser has {}",
                sd.groups.len(),
                self.groups.len()
            )));
        }
        // saved parameter index -> our parameter index
        let mut map = BTreeMap::new();
        let mut hypers = Vec::with_capacity(self.groups.len());
        let mut index = 0;
        for (g, (mine, saved)) in self.groups.iter().zip(&sd.groups).enumerate() {
            if saved.params.len() != mine.params.len() {
                return Err(OptimError::mismatch(format!(
                    "group {g} has {} parameters in the state, {} in this optimiser",
                    saved.params.len(),
                    mine.params.len()
                )));
            }
            for (k, &saved_index) in saved.params.iter().enumerate() {
                if let (Some(Some(a)), Some(b)) = (saved.names.get(k), &mine.names[k]) {
                    if a != b {
                        return Err(OptimError::mismatch(format!(
                            "parameter {} of group {g} is named '{a}' in the state but '{b}' here",
                            k
                        )));
                    }
                }
                if map.insert(saved_index, index + k).is_some() {
                    return Err(OptimError::mismatch(format!(
                        "parameter index {saved_index} appears twice in the state"
                    )));
                }
            }
            index += mine.params.len();
            let hyper: H = serde_json::from_value(saved.hyper.clone()).map_err(|e| {
                OptimError::mismatch(format!(
                    "group {g}: hyper-parameters for {}: {e}",
                    self.name
                ))
            })?;
            // A state file is outside input: its values get the constructors' checks.
            hyper
                .check()
                .map_err(|e| OptimError::mismatch(format!("group {g}: {e}")))?;
            hypers.push(hyper);
        }
        let params = self.params();
        let mut state: Vec<Option<S>> = (0..params.len()).map(|_| None).collect();
        for (saved_index, rec) in &sd.state {
            let Some(&i) = map.get(saved_index) else {
                return Err(OptimError::mismatch(format!(
                    "state for parameter {saved_index}, which is in no group"
                )));
            };
            state[i] = Some(S::load(rec, &params[i], &self.describe(i))?);
        }
        for (group, hyper) in self.groups.iter_mut().zip(hypers) {
            group.hyper = hyper;
        }
        self.state = state;
        Ok(())
    }
}

/// Implements the `Optimizer` methods that only do bookkeeping by delegating to the
/// `core` field.
macro_rules! delegate_to_core {
    () => {
        fn name(&self) -> &'static str {
            self.core.name
        }
        fn num_groups(&self) -> usize {
            self.core.groups.len()
        }
        fn group_lr(&self, group: usize) -> f64 {
            $crate::group::Hyper::lr(&self.core.group(group).hyper)
        }
        fn set_group_lr(&mut self, group: usize, lr: f64) {
            self.core.set_group_lr(group, lr)
        }
        fn group_weight_decay(&self, group: usize) -> f64 {
            $crate::group::Hyper::weight_decay(&self.core.group(group).hyper)
        }
        fn params(&self) -> Vec<tapegrad_nn::Param> {
            self.core.params()
        }
        fn state_dict(&self) -> $crate::state::StateDict {
            self.core.state_dict()
        }
        fn load_state_dict(
            &mut self,
            sd: &$crate::state::StateDict,
        ) -> Result<(), $crate::error::OptimError> {
            self.core.load_state_dict(sd)
        }
    };
}

/// Inherent constructors and group accessors every optimiser has.
macro_rules! optimizer_inherent {
    ($ty:ident, $cfg:ident, $name:literal) => {
        impl $ty {
            /// An optimiser over `params`, all in one group with hyper-parameters `config`.
            ///
            /// # Panics
            /// If a hyper-parameter is out of range (as PyTorch's `ValueError`) or a
            /// parameter is listed twice.
            #[track_caller]
            pub fn new(params: impl IntoIterator<Item = tapegrad_nn::Param>, config: $cfg) -> Self {
                Self::with_groups(vec![$crate::group::ParamGroup::new(params, config)])
            }

            /// An optimiser over several parameter groups, each with its own hyper-parameters.
            ///
            /// # Panics
            /// As [`new`](Self::new).
            #[track_caller]
            pub fn with_groups(groups: Vec<$crate::group::ParamGroup<$cfg>>) -> Self {
                $ty {
                    core: $crate::group::Core::new($name, groups),
                }
            }

            /// The parameter groups.
            pub fn groups(&self) -> &[$crate::group::ParamGroup<$cfg>] {
                &self.core.groups
            }

            /// The hyper-parameters of group `group`, to change between steps (the state is
            /// kept; the parameter lists are fixed).
            ///
            /// # Panics
            /// If `group` is out of range.
            #[track_caller]
            pub fn hyper_mut(&mut self, group: usize) -> &mut $cfg {
                let n = self.core.groups.len();
                match self.core.groups.get_mut(group) {
                    Some(g) => &mut g.hyper,
                    None => panic!("{}: group {group} out of range ({n} groups)", $name),
                }
            }

            /// Adds a parameter group (PyTorch's `add_param_group`), e.g. to unfreeze layers.
            ///
            /// # Panics
            /// As [`new`](Self::new).
            #[track_caller]
            pub fn add_param_group(&mut self, group: $crate::group::ParamGroup<$cfg>) {
                self.core.add_group(group)
            }
        }
    };
}

/// The `lr`, `set_lr` and `weight_decay` methods of a [`Hyper`] impl whose config struct
/// has `lr` and `weight_decay` fields (every optimiser's does).
macro_rules! hyper_accessors {
    () => {
        fn lr(&self) -> f64 {
            self.lr
        }
        fn set_lr(&mut self, lr: f64) {
            self.lr = lr;
        }
        fn weight_decay(&self) -> f64 {
            self.weight_decay
        }
    };
}

pub(crate) use delegate_to_core;
pub(crate) use hyper_accessors;
pub(crate) use optimizer_inherent;
