//! `--invoke FUNC [ARGS...]`: finding the export, parsing its arguments by
//! its parameter types, and printing its results.
//!
//! Arguments: `i32`/`i64` take a decimal number (negative, or unsigned up
//! to 2^32-1 / 2^64-1, which wraps) or `0x` hex; `f32`/`f64` take a decimal
//! float, `inf`, `-inf` or `nan`; `externref` takes `null` or a number (the
//! host value of the reference); `funcref` takes only `null`.
//!
//! Results are printed one per line: integers as signed decimals, floats
//! as Rust prints them (`1.5`, `NaN`, `inf`), references as `null`,
//! `funcref` or `externref:N`.

use super::exit::CliError;
use shoal::module_info::ExportKind;
use shoal::{ExternRef, FuncType, Module, Val, ValType};

/// The type of `module`'s function export `name`, or a usage error that
/// lists the function exports.
pub fn export_type(module: &Module, name: &str) -> Result<FuncType, CliError> {
    match module.exports().find(|(n, _)| *n == name) {
        Some((_, ExportKind::Func(index))) => Ok(module.info().func_type(index).clone()),
        Some(_) => Err(CliError::Usage(format!(
            "export `{name}` is not a function ({})",
            function_exports(module)
        ))),
        None => Err(CliError::Usage(format!(
            "the module has no export `{name}` ({})",
            function_exports(module)
        ))),
    }
}

/// Whether `module` exports a function called `name`.
pub fn has_function(module: &Module, name: &str) -> bool {
    module
        .exports()
        .any(|(n, k)| n == name && matches!(k, ExportKind::Func(_)))
}

/// "its function exports: a, b" (or "it exports no function").
pub fn function_exports(module: &Module) -> String {
    let names: Vec<&str> = module
        .exports()
        .filter(|(_, k)| matches!(k, ExportKind::Func(_)))
        .map(|(n, _)| n)
        .collect();
    if names.is_empty() {
        "it exports no function".to_string()
    } else {
        format!("its function exports: {}", names.join(", "))
    }
}

/// Parses `args` as the parameters of `func` (of type `ty`).
pub fn parse_args(func: &str, ty: &FuncType, args: &[String]) -> Result<Vec<Val>, CliError> {
    if args.len() != ty.params.len() {
        return Err(CliError::Usage(format!(
            "`{func}` has type {ty}: it takes {} argument(s), but {} were given",
            ty.params.len(),
            args.len()
        )));
    }
    ty.params
        .iter()
        .zip(args)
        .enumerate()
        .map(|(i, (&ty, arg))| {
            parse_val(ty, arg).ok_or_else(|| {
                CliError::Usage(format!(
                    "argument {} of `{func}` is an {ty}, and `{arg}` is not one{}",
                    i + 1,
                    match ty {
                        ValType::FuncRef => " (only `null` can be passed)",
                        _ => "",
                    }
                ))
            })
        })
        .collect()
}

fn parse_val(ty: ValType, s: &str) -> Option<Val> {
    let s = s.trim();
    Some(match ty {
        ValType::I32 => Val::I32(parse_int(s, u64::from(u32::MAX))? as u32 as i32),
        ValType::I64 => Val::I64(parse_int(s, u64::MAX)? as i64),
        ValType::F32 => Val::F32(s.parse::<f32>().ok()?.to_bits()),
        ValType::F64 => Val::F64(s.parse::<f64>().ok()?.to_bits()),
        ValType::FuncRef => match s {
            "null" => Val::FuncRef(None),
            _ => return None,
        },
        ValType::ExternRef => match s {
            "null" => Val::ExternRef(None),
            _ => Val::ExternRef(Some(ExternRef(s.parse().ok()?))),
        },
    })
}

/// A signed or unsigned integer of at most `max_unsigned`, as its two's
/// complement bits.
fn parse_int(s: &str, max_unsigned: u64) -> Option<u64> {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let magnitude = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => digits.parse::<u64>().ok()?,
    };
    if negative {
        // Down to the type's minimum: -2^31 for i32, -2^63 for i64.
        let min_magnitude = max_unsigned / 2 + 1;
        (magnitude <= min_magnitude).then(|| magnitude.wrapping_neg())
    } else {
        (magnitude <= max_unsigned).then_some(magnitude)
    }
}

/// A result as printed.
pub fn format_val(val: &Val) -> String {
    match val {
        Val::I32(v) => v.to_string(),
        Val::I64(v) => v.to_string(),
        Val::F32(bits) => f32::from_bits(*bits).to_string(),
        Val::F64(bits) => f64::from_bits(*bits).to_string(),
        Val::FuncRef(None) | Val::ExternRef(None) => "null".to_string(),
        Val::FuncRef(Some(_)) => "funcref".to_string(),
        Val::ExternRef(Some(r)) => format!("externref:{}", r.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers() {
        assert_eq!(parse_val(ValType::I32, "-1"), Some(Val::I32(-1)));
        assert_eq!(parse_val(ValType::I32, "4294967295"), Some(Val::I32(-1)));
        assert_eq!(parse_val(ValType::I32, "0x10"), Some(Val::I32(16)));
        assert_eq!(
            parse_val(ValType::I32, "-2147483648"),
            Some(Val::I32(i32::MIN))
        );
        assert_eq!(parse_val(ValType::I32, "-2147483649"), None);
        assert_eq!(parse_val(ValType::I32, "4294967296"), None);
        assert_eq!(
            parse_val(ValType::I64, "-9223372036854775808"),
            Some(Val::I64(i64::MIN))
        );
        assert_eq!(
            parse_val(ValType::I64, "18446744073709551615"),
            Some(Val::I64(-1))
        );
        assert_eq!(parse_val(ValType::I64, "ten"), None);
    }

    #[test]
    fn floats_and_refs() {
        assert_eq!(
            parse_val(ValType::F64, "1.5"),
            Some(Val::F64(1.5f64.to_bits()))
        );
        assert!(matches!(parse_val(ValType::F32, "nan"), Some(Val::F32(_))));
        assert_eq!(
            parse_val(ValType::FuncRef, "null"),
            Some(Val::FuncRef(None))
        );
        assert_eq!(parse_val(ValType::FuncRef, "7"), None);
        assert_eq!(
            parse_val(ValType::ExternRef, "7"),
            Some(Val::ExternRef(Some(ExternRef(7))))
        );
        assert_eq!(format_val(&Val::F32(2.5f32.to_bits())), "2.5");
        assert_eq!(format_val(&Val::I64(-3)), "-3");
    }
}
