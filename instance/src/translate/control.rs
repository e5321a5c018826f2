//! The translation state: the wasm value stack (as Cranelift values), the
//! control stack, and whether the current code is reachable.
//!
//! # Control frames
//!
//! Every `block`, `loop` and `if` pushes a [`ControlFrame`]; the function body
//! itself is an outermost `Block` whose destination is the exit block.
//!
//! - A branch to a `Block` or `If` jumps to its *destination* (the code after
//!   its `end`) with the frame's results; a branch to a `Loop` jumps to its
//!   *header* with the loop's params. With epoch checks on, every branch back
//!   to a loop header checks the epoch on its way (see `Operator::Loop` in
//!   `operators.rs`; a `br_table` through one edge block per target).
//! - An `if` pushes its params twice, so that the `else` arm finds them on the
//!   stack again without saving them on the side:
//!   `original_stack_size` counts them once.
//! - An `if` whose params equal its results may have no `else`; its false
//!   edge first targets the destination and is redirected to a fresh `else`
//!   block if an `else` turns up ([`ElseData`]).
//!
//! # Unreachable code
//!
//! After `br`, `br_table`, `return` or `unreachable` the rest of the enclosing
//! block cannot run; the translator emits nothing for it but still tracks
//! nesting (frames with placeholder blocks) so that it knows where reachable
//! code resumes: at an `else` whose `if` head was reachable, or at an `end`
//! whose frame was branched to.

use super::TResult;
use cranelift_codegen::ir::{Block, Inst, Value};
use wasmparser::BlockType;

/// How an `if` gets to its `else` arm.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ElseData {
    /// No `else` block yet: the false edge of `branch_inst` targets
    /// `placeholder` (the destination) until an `else` appears.
    NoElse {
        branch_inst: Inst,
        placeholder: Block,
    },
    /// The `else` block was created up front (params differ from results).
    WithElse { else_block: Block },
}

/// One entry of the control stack.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ControlFrame {
    If {
        destination: Block,
        else_data: ElseData,
        num_param_values: usize,
        num_return_values: usize,
        original_stack_size: usize,
        exit_is_branched_to: bool,
        blocktype: BlockType,
        /// Whether the `if` itself was reachable (then its `else` is).
        head_is_reachable: bool,
        /// Whether the `then` arm ended reachable; `None` until `else`.
        consequent_ends_reachable: Option<bool>,
    },
    Block {
        destination: Block,
        num_param_values: usize,
        num_return_values: usize,
        original_stack_size: usize,
        exit_is_branched_to: bool,
    },
    Loop {
        destination: Block,
        header: Block,
        num_param_values: usize,
        num_return_values: usize,
        original_stack_size: usize,
    },
}

impl ControlFrame {
    pub(crate) fn num_return_values(&self) -> usize {
        match *self {
            Self::If {
                num_return_values, ..
            }
            | Self::Block {
                num_return_values, ..
            }
            | Self::Loop {
                num_return_values, ..
            } => num_return_values,
        }
    }

    pub(crate) fn num_param_values(&self) -> usize {
        match *self {
            Self::If {
                num_param_values, ..
            }
            | Self::Block {
                num_param_values, ..
            }
            | Self::Loop {
                num_param_values, ..
            } => num_param_values,
        }
    }

    /// The block after the frame's `end`.
    pub(crate) fn following_code(&self) -> Block {
        match *self {
            Self::If { destination, .. }
            | Self::Block { destination, .. }
            | Self::Loop { destination, .. } => destination,
        }
    }

    /// Where a branch targeting this frame goes.
    pub(crate) fn br_destination(&self) -> Block {
        match *self {
            Self::If { destination, .. } | Self::Block { destination, .. } => destination,
            Self::Loop { header, .. } => header,
        }
    }

    /// How many values a branch targeting this frame carries.
    pub(crate) fn br_arity(&self) -> usize {
        if self.is_loop() {
            self.num_param_values()
        } else {
            self.num_return_values()
        }
    }

    fn original_stack_size(&self) -> usize {
        match *self {
            Self::If {
                original_stack_size,
                ..
            }
            | Self::Block {
                original_stack_size,
                ..
            }
            | Self::Loop {
                original_stack_size,
                ..
            } => original_stack_size,
        }
    }

    pub(crate) fn is_loop(&self) -> bool {
        matches!(self, Self::Loop { .. })
    }

    pub(crate) fn exit_is_branched_to(&self) -> bool {
        match *self {
            Self::If {
                exit_is_branched_to,
                ..
            }
            | Self::Block {
                exit_is_branched_to,
                ..
            } => exit_is_branched_to,
            Self::Loop { .. } => false,
        }
    }

    pub(crate) fn set_branched_to_exit(&mut self) {
        match self {
            Self::If {
                exit_is_branched_to,
                ..
            }
            | Self::Block {
                exit_is_branched_to,
                ..
            } => *exit_is_branched_to = true,
            Self::Loop { .. } => {}
        }
    }

    /// Pops everything above the `else` arm's params (the second copy
    /// pushed by `push_if`).
    pub(crate) fn truncate_value_stack_to_else_params(&self, stack: &mut Vec<Value>) {
        debug_assert!(matches!(self, Self::If { .. }));
        stack.truncate(self.original_stack_size());
    }

    /// Pops everything the frame pushed, its params included.
    pub(crate) fn truncate_value_stack_to_original_size(&self, stack: &mut Vec<Value>) {
        // An `if` pushed its params twice; `original_stack_size` counts the
        // first copy, which must go too.
        let num_duplicated_params = match *self {
            Self::If {
                num_param_values, ..
            } => num_param_values,
            _ => 0,
        };
        stack.truncate(
            self.original_stack_size()
                .saturating_sub(num_duplicated_params),
        );
    }
}

/// The value stack, the control stack and reachability of the current code.
#[derive(Default)]
pub(crate) struct TranslationState {
    pub(crate) stack: Vec<Value>,
    pub(crate) control: Vec<ControlFrame>,
    /// Whether the code being translated can run. When false, operators are
    /// skipped until the matching `else`/`end`.
    pub(crate) reachable: bool,
}

const UNDERFLOW: &str = "wasm value stack underflow (invalid function body)";

impl TranslationState {
    pub(crate) fn clear(&mut self) {
        self.stack.clear();
        self.control.clear();
        self.reachable = true;
    }

    pub(crate) fn push1(&mut self, v: Value) {
        self.stack.push(v);
    }

    pub(crate) fn pushn(&mut self, vals: &[Value]) {
        self.stack.extend_from_slice(vals);
    }

    pub(crate) fn pop1(&mut self) -> TResult<Value> {
        self.stack.pop().ok_or_else(|| UNDERFLOW.to_string())
    }

    /// Pops two values, returning them in push order.
    pub(crate) fn pop2(&mut self) -> TResult<(Value, Value)> {
        let b = self.pop1()?;
        let a = self.pop1()?;
        Ok((a, b))
    }

    /// Pops three values, returning them in push order.
    pub(crate) fn pop3(&mut self) -> TResult<(Value, Value, Value)> {
        let c = self.pop1()?;
        let b = self.pop1()?;
        let a = self.pop1()?;
        Ok((a, b, c))
    }

    pub(crate) fn popn(&mut self, n: usize) -> TResult<()> {
        let len = self.stack.len();
        if n > len {
            return Err(UNDERFLOW.to_string());
        }
        self.stack.truncate(len - n);
        Ok(())
    }

    /// The top `n` values, in push order.
    pub(crate) fn peekn(&self, n: usize) -> TResult<&[Value]> {
        let len = self.stack.len();
        if n > len {
            return Err(UNDERFLOW.to_string());
        }
        Ok(&self.stack[len - n..])
    }

    /// The frame `relative_depth` levels out from the innermost.
    pub(crate) fn frame_mut(&mut self, relative_depth: u32) -> TResult<&mut ControlFrame> {
        let len = self.control.len();
        let depth = relative_depth as usize;
        if depth >= len {
            return Err(format!("branch depth {relative_depth} out of range"));
        }
        Ok(&mut self.control[len - 1 - depth])
    }

    pub(crate) fn push_block(
        &mut self,
        destination: Block,
        num_param_values: usize,
        num_return_values: usize,
    ) -> TResult<()> {
        let original_stack_size = self
            .stack
            .len()
            .checked_sub(num_param_values)
            .ok_or_else(|| UNDERFLOW.to_string())?;
        self.control.push(ControlFrame::Block {
            destination,
            num_param_values,
            num_return_values,
            original_stack_size,
            exit_is_branched_to: false,
        });
        Ok(())
    }

    pub(crate) fn push_loop(
        &mut self,
        header: Block,
        destination: Block,
        num_param_values: usize,
        num_return_values: usize,
    ) -> TResult<()> {
        let original_stack_size = self
            .stack
            .len()
            .checked_sub(num_param_values)
            .ok_or_else(|| UNDERFLOW.to_string())?;
        self.control.push(ControlFrame::Loop {
            destination,
            header,
            num_param_values,
            num_return_values,
            original_stack_size,
        });
        Ok(())
    }

    pub(crate) fn push_if(
        &mut self,
        destination: Block,
        else_data: ElseData,
        num_param_values: usize,
        num_return_values: usize,
        blocktype: BlockType,
    ) -> TResult<()> {
        let len = self.stack.len();
        if num_param_values > len {
            return Err(UNDERFLOW.to_string());
        }
        // Second copy of the params, for the `else` arm.
        self.stack.extend_from_within(len - num_param_values..len);
        self.control.push(ControlFrame::If {
            destination,
            else_data,
            num_param_values,
            num_return_values,
            original_stack_size: len,
            exit_is_branched_to: false,
            blocktype,
            head_is_reachable: self.reachable,
            consequent_ends_reachable: None,
        });
        Ok(())
    }
}
