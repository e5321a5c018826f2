//! Converting the script's argument literals to [`Val`]s, and matching
//! returned [`Val`]s against the script's expected results (NaN patterns
//! included).

use shoal_instance::{ExternRef, Val};
use wast::core::{AbstractHeapType, HeapType, NanPattern, WastArgCore, WastRetCore};
use wast::{WastArg, WastRet};

/// The value an `(invoke ...)` argument stands for.
pub fn arg_to_val(arg: &WastArg<'_>) -> Result<Val, String> {
    let WastArg::Core(core) = arg else {
        return Err(format!("unsupported argument (not core wasm): {arg:?}"));
    };
    Ok(match core {
        WastArgCore::I32(v) => Val::I32(*v),
        WastArgCore::I64(v) => Val::I64(*v),
        WastArgCore::F32(f) => Val::F32(f.bits),
        WastArgCore::F64(f) => Val::F64(f.bits),
        WastArgCore::RefNull(ty) => match ref_kind(ty)? {
            RefKind::Func => Val::FuncRef(None),
            RefKind::Extern => Val::ExternRef(None),
        },
        WastArgCore::RefExtern(n) => Val::ExternRef(Some(ExternRef(u64::from(*n)))),
        other => {
            return Err(format!(
                "unsupported argument (not WebAssembly 2.0): {other:?}"
            ))
        }
    })
}

/// Checks a call's results against the expected ones.
pub fn check_results(actual: &[Val], expected: &[WastRet<'_>]) -> Result<(), String> {
    if actual.len() != expected.len() {
        return Err(format!(
            "returned {} values [{}], expected {} [{}]",
            actual.len(),
            list(actual.iter().map(describe_val)),
            expected.len(),
            list(expected.iter().map(describe_ret)),
        ));
    }
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        let WastRet::Core(e) = e else {
            return Err(format!(
                "unsupported expected result (not core wasm): {e:?}"
            ));
        };
        if !matches(a, e)? {
            let position = if actual.len() == 1 {
                String::new()
            } else {
                format!(" #{i}")
            };
            return Err(format!(
                "result{position}: got {}, expected {}",
                describe_val(a),
                describe_core_ret(e)
            ));
        }
    }
    Ok(())
}

/// Whether `actual` matches the pattern `expected`. `Err` for patterns this
/// runner cannot check (not WebAssembly 2.0).
fn matches(actual: &Val, expected: &WastRetCore<'_>) -> Result<bool, String> {
    Ok(match (actual, expected) {
        (Val::I32(a), WastRetCore::I32(e)) => a == e,
        (Val::I64(a), WastRetCore::I64(e)) => a == e,
        (Val::F32(bits), WastRetCore::F32(pattern)) => match pattern {
            NanPattern::CanonicalNan => is_canonical_nan_f32(*bits),
            NanPattern::ArithmeticNan => is_arithmetic_nan_f32(*bits),
            NanPattern::Value(e) => *bits == e.bits,
        },
        (Val::F64(bits), WastRetCore::F64(pattern)) => match pattern {
            NanPattern::CanonicalNan => is_canonical_nan_f64(*bits),
            NanPattern::ArithmeticNan => is_arithmetic_nan_f64(*bits),
            NanPattern::Value(e) => *bits == e.bits,
        },
        (actual, WastRetCore::RefNull(ty)) => {
            let kind = ty.as_ref().map(ref_kind).transpose()?;
            matches!(
                (actual, kind),
                (Val::FuncRef(None), None | Some(RefKind::Func))
                    | (Val::ExternRef(None), None | Some(RefKind::Extern))
            )
        }
        (Val::ExternRef(Some(r)), WastRetCore::RefExtern(e)) => match e {
            Some(n) => r.0 == u64::from(*n),
            None => true,
        },
        // The function's identity cannot be compared from outside the
        // instance; a non-null funcref is what the suite checks.
        (Val::FuncRef(Some(_)), WastRetCore::RefFunc(_)) => true,
        (actual, WastRetCore::Either(alternatives)) => {
            for alternative in alternatives {
                if matches(actual, alternative)? {
                    return Ok(true);
                }
            }
            false
        }
        (
            _,
            WastRetCore::I32(_)
            | WastRetCore::I64(_)
            | WastRetCore::F32(_)
            | WastRetCore::F64(_)
            | WastRetCore::RefExtern(_)
            | WastRetCore::RefFunc(_),
        ) => false,
        (_, other) => {
            return Err(format!(
                "unsupported expected result (not WebAssembly 2.0): {other:?}"
            ))
        }
    })
}

pub fn is_canonical_nan_f32(bits: u32) -> bool {
    bits & 0x7fff_ffff == 0x7fc0_0000
}
pub fn is_arithmetic_nan_f32(bits: u32) -> bool {
    bits & 0x7fc0_0000 == 0x7fc0_0000
}
pub fn is_canonical_nan_f64(bits: u64) -> bool {
    bits & 0x7fff_ffff_ffff_ffff == 0x7ff8_0000_0000_0000
}
pub fn is_arithmetic_nan_f64(bits: u64) -> bool {
    bits & 0x7ff8_0000_0000_0000 == 0x7ff8_0000_0000_0000
}

enum RefKind {
    Func,
    Extern,
}

fn ref_kind(ty: &HeapType<'_>) -> Result<RefKind, String> {
    match ty {
        HeapType::Abstract {
            shared: false,
            ty: AbstractHeapType::Func,
        } => Ok(RefKind::Func),
        HeapType::Abstract {
            shared: false,
            ty: AbstractHeapType::Extern,
        } => Ok(RefKind::Extern),
        other => Err(format!(
            "unsupported reference type (not WebAssembly 2.0): {other:?}"
        )),
    }
}

fn list(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

/// A value as the script would write it, with float bits.
pub fn describe_val(v: &Val) -> String {
    match v {
        Val::I32(x) => format!("i32.const {x} ({:#x})", *x as u32),
        Val::I64(x) => format!("i64.const {x} ({:#x})", *x as u64),
        Val::F32(bits) => format!("f32.const {} ({bits:#010x})", f32::from_bits(*bits)),
        Val::F64(bits) => format!("f64.const {} ({bits:#018x})", f64::from_bits(*bits)),
        Val::FuncRef(None) => "ref.null func".to_string(),
        Val::FuncRef(Some(_)) => "ref.func".to_string(),
        Val::ExternRef(None) => "ref.null extern".to_string(),
        Val::ExternRef(Some(r)) => format!("ref.extern {}", r.0),
    }
}

fn describe_ret(r: &WastRet<'_>) -> String {
    match r {
        WastRet::Core(c) => describe_core_ret(c),
        other => format!("{other:?}"),
    }
}

fn describe_core_ret(r: &WastRetCore<'_>) -> String {
    fn nan<T>(p: &NanPattern<T>, ty: &str, value: impl Fn(&T) -> String) -> String {
        match p {
            NanPattern::CanonicalNan => format!("{ty}.const nan:canonical"),
            NanPattern::ArithmeticNan => format!("{ty}.const nan:arithmetic"),
            NanPattern::Value(v) => format!("{ty}.const {}", value(v)),
        }
    }
    match r {
        WastRetCore::I32(x) => describe_val(&Val::I32(*x)),
        WastRetCore::I64(x) => describe_val(&Val::I64(*x)),
        WastRetCore::F32(p) => nan(p, "f32", |f| {
            format!("{} ({:#010x})", f32::from_bits(f.bits), f.bits)
        }),
        WastRetCore::F64(p) => nan(p, "f64", |f| {
            format!("{} ({:#018x})", f64::from_bits(f.bits), f.bits)
        }),
        WastRetCore::RefNull(None) => "ref.null".to_string(),
        WastRetCore::RefNull(Some(ty)) => match ref_kind(ty) {
            Ok(RefKind::Func) => "ref.null func".to_string(),
            Ok(RefKind::Extern) => "ref.null extern".to_string(),
            Err(_) => format!("ref.null {ty:?}"),
        },
        WastRetCore::RefExtern(None) => "ref.extern".to_string(),
        WastRetCore::RefExtern(Some(n)) => format!("ref.extern {n}"),
        WastRetCore::RefFunc(_) => "ref.func".to_string(),
        WastRetCore::Either(alternatives) => {
            format!(
                "either({})",
                list(alternatives.iter().map(describe_core_ret))
            )
        }
        other => format!("{other:?}"),
    }
}
