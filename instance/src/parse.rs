//! From bytes to a validated [`ModuleInfo`].
//!
//! Two passes over the binary:
//! 1. **Validation** with wasmparser's `Validator`, restricted to
//!    WebAssembly 2.0 without SIMD. When a module fails, it is validated
//!    again with every proposal enabled: if that succeeds, the module is
//!    valid but uses a feature Shoal does not support, and the error names
//!    the feature instead of reporting a confusing validation failure.
//! 2. **Extraction** of everything the compiler and instantiation need into
//!    a [`ModuleInfo`]. This pass trusts the validation pass, but still
//!    returns errors rather than panicking on anything unexpected.

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::module_info::{
    ConstExpr, DataMode, DataSegment, ElemMode, ElemSegment, ExportKind, FunctionBody, Import,
    ImportKind, ModuleInfo,
};
use crate::types::{FuncType, GlobalType, MemoryType, TableType, ValType};
use wasmparser::{Parser, Payload, Validator, WasmFeatures};

/// The features Shoal compiles: WebAssembly 2.0 minus SIMD.
pub fn supported_features() -> WasmFeatures {
    WasmFeatures::WASM2.difference(WasmFeatures::SIMD)
}

/// Turns `.wat` text into a binary; passes a binary through.
///
/// Input is taken as text only when it looks like text: valid UTF-8 whose
/// first non-blank character opens a form `(` or a comment `;`. Anything else
/// is decoded as a binary, so a binary with a broken header gets a
/// "malformed" error rather than a text parse error.
pub fn to_binary(bytes: &[u8]) -> Result<Vec<u8>> {
    let looks_like_text = std::str::from_utf8(bytes)
        .map(|text| matches!(text.trim_start().chars().next(), Some('(' | ';')))
        .unwrap_or(false);
    if !looks_like_text {
        return Ok(bytes.to_vec());
    }
    wat::parse_bytes(bytes)
        .map(|b| b.into_owned())
        .map_err(|e| Error::Text(e.to_string()))
}

/// Validates `wasm` against the supported feature set.
///
/// The error says which kind of problem it is: `Malformed` when the bytes do
/// not decode (found by [`decode_error`], run only on this error path),
/// `Unsupported` when the module needs a feature beyond 2.0 or SIMD, and
/// `Invalid` when it decodes but does not validate.
pub fn validate(wasm: &[u8]) -> Result<()> {
    let first = match Validator::new_with_features(supported_features()).validate_all(wasm) {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    if let Some(e) = decode_error(wasm) {
        return Err(malformed(e));
    }
    if let Some(feature) = unsupported_feature_used(wasm) {
        return Err(Error::Unsupported {
            feature,
            offset: first.offset() as usize,
        });
    }
    let message = first.message().to_string();
    let offset = first.offset() as usize;
    Err(if is_structural(&message) {
        Error::Malformed { offset, message }
    } else {
        Error::Invalid { offset, message }
    })
}

/// If `wasm` validates once one more proposal is enabled, that proposal's name.
fn unsupported_feature_used(wasm: &[u8]) -> Option<String> {
    if Validator::new_with_features(WasmFeatures::all())
        .validate_all(wasm)
        .is_err()
    {
        return None;
    }
    let base = supported_features();
    for (name, flag) in WasmFeatures::all().difference(base).iter_names() {
        if Validator::new_with_features(base.union(flag))
            .validate_all(wasm)
            .is_ok()
        {
            return Some(name.to_ascii_lowercase());
        }
    }
    Some("a combination of post-2.0 proposals".to_string())
}

/// Problems the validator finds that the spec calls "malformed": they concern
/// the binary's structure across sections rather than typing.
fn is_structural(message: &str) -> bool {
    const MARKERS: &[&str] = &[
        "multiple start sections",
        "inconsistent lengths",
        "data count section required",
        "data count and data section have inconsistent lengths",
        "section out of order",
        "unexpected content after last section",
        "integer too large",
        "zero byte expected",
        "malformed",
        "control frames remain",
    ];
    let lower = message.to_ascii_lowercase();
    MARKERS.iter().any(|m| lower.contains(m))
}

/// Decodes every section, item and operator without validating; the first
/// decoding error, if any.
pub fn decode_error(wasm: &[u8]) -> Option<wasmparser::BinaryReaderError> {
    decode_all(wasm).err()
}

fn decode_all(wasm: &[u8]) -> std::result::Result<(), wasmparser::BinaryReaderError> {
    fn drain<'a, T: wasmparser::FromReader<'a>>(
        reader: wasmparser::SectionLimited<'a, T>,
    ) -> std::result::Result<Vec<T>, wasmparser::BinaryReaderError> {
        reader.into_iter().collect()
    }
    fn drain_expr(
        expr: &wasmparser::ConstExpr<'_>,
    ) -> std::result::Result<(), wasmparser::BinaryReaderError> {
        let mut ops = expr.get_operators_reader();
        while !ops.eof() {
            ops.read()?;
        }
        Ok(())
    }
    for payload in Parser::new(0).parse_all(wasm) {
        match payload? {
            Payload::TypeSection(r) => {
                drain(r)?;
            }
            Payload::ImportSection(r) => {
                for import in r.into_imports() {
                    import?;
                }
            }
            Payload::FunctionSection(r) => {
                drain(r)?;
            }
            Payload::TableSection(r) => {
                drain(r)?;
            }
            Payload::MemorySection(r) => {
                drain(r)?;
            }
            Payload::GlobalSection(r) => {
                for g in drain(r)? {
                    drain_expr(&g.init_expr)?;
                }
            }
            Payload::ExportSection(r) => {
                drain(r)?;
            }
            Payload::ElementSection(r) => {
                for elem in drain(r)? {
                    if let wasmparser::ElementKind::Active { offset_expr, .. } = &elem.kind {
                        drain_expr(offset_expr)?;
                    }
                    match elem.items {
                        wasmparser::ElementItems::Functions(f) => {
                            drain(f)?;
                        }
                        wasmparser::ElementItems::Expressions(_, e) => {
                            for expr in drain(e)? {
                                drain_expr(&expr)?;
                            }
                        }
                    }
                }
            }
            Payload::DataSection(r) => {
                for data in drain(r)? {
                    if let wasmparser::DataKind::Active { offset_expr, .. } = &data.kind {
                        drain_expr(offset_expr)?;
                    }
                }
            }
            Payload::CodeSectionEntry(body) => {
                for local in body.get_locals_reader()? {
                    local?;
                }
                let mut ops = body.get_operators_reader()?;
                while !ops.eof() {
                    ops.read()?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Validates and extracts a module. `bytes` may be a binary or `.wat` text.
pub fn parse(engine: &Engine, bytes: &[u8]) -> Result<ModuleInfo> {
    let wasm = to_binary(bytes)?;
    validate(&wasm)?;
    let mut info = extract(&wasm)?;
    info.type_ids = info.types.iter().map(|t| engine.signature_id(t)).collect();
    info.wasm = wasm;
    Ok(info)
}

fn malformed(e: wasmparser::BinaryReaderError) -> Error {
    Error::Malformed {
        offset: e.offset() as usize,
        message: e.message().to_string(),
    }
}

fn extract(wasm: &[u8]) -> Result<ModuleInfo> {
    let mut info = ModuleInfo::default();
    for payload in Parser::new(0).parse_all(wasm) {
        match payload.map_err(malformed)? {
            Payload::TypeSection(reader) => {
                for ty in reader.into_iter_err_on_gc_types() {
                    let ty = ty.map_err(malformed)?;
                    info.types.push(FuncType::new(
                        ty.params()
                            .iter()
                            .map(|t| val_type(*t))
                            .collect::<Result<Vec<_>>>()?,
                        ty.results()
                            .iter()
                            .map(|t| val_type(*t))
                            .collect::<Result<Vec<_>>>()?,
                    ));
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.map_err(malformed)?;
                    let kind = match import.ty {
                        wasmparser::TypeRef::Func(t) => {
                            info.functions.push(t);
                            info.num_imported_funcs += 1;
                            ImportKind::Func(t)
                        }
                        wasmparser::TypeRef::Table(t) => {
                            let t = table_type(&t)?;
                            info.tables.push(t);
                            info.num_imported_tables += 1;
                            ImportKind::Table(t)
                        }
                        wasmparser::TypeRef::Memory(m) => {
                            let m = memory_type(&m);
                            info.memories.push(m);
                            info.num_imported_memories += 1;
                            ImportKind::Memory(m)
                        }
                        wasmparser::TypeRef::Global(g) => {
                            let g = global_type(&g)?;
                            info.globals.push(g);
                            info.num_imported_globals += 1;
                            ImportKind::Global(g)
                        }
                        other => return Err(unsupported(format!("import of {other:?}"))),
                    };
                    info.imports.push(Import {
                        module: import.module.to_string(),
                        name: import.name.to_string(),
                        kind,
                    });
                }
            }
            Payload::FunctionSection(reader) => {
                for t in reader {
                    info.functions.push(t.map_err(malformed)?);
                }
            }
            Payload::TableSection(reader) => {
                for table in reader {
                    let table = table.map_err(malformed)?;
                    if let wasmparser::TableInit::Expr(_) = table.init {
                        return Err(unsupported("table initializer expression".into()));
                    }
                    info.tables.push(table_type(&table.ty)?);
                }
            }
            Payload::MemorySection(reader) => {
                for m in reader {
                    info.memories.push(memory_type(&m.map_err(malformed)?));
                }
            }
            Payload::GlobalSection(reader) => {
                for g in reader {
                    let g = g.map_err(malformed)?;
                    info.globals.push(global_type(&g.ty)?);
                    info.global_inits.push(const_expr(&g.init_expr)?);
                }
            }
            Payload::ExportSection(reader) => {
                for e in reader {
                    let e = e.map_err(malformed)?;
                    let kind = match e.kind {
                        wasmparser::ExternalKind::Func => ExportKind::Func(e.index),
                        wasmparser::ExternalKind::Table => ExportKind::Table(e.index),
                        wasmparser::ExternalKind::Memory => ExportKind::Memory(e.index),
                        wasmparser::ExternalKind::Global => ExportKind::Global(e.index),
                        other => return Err(unsupported(format!("export of {other:?}"))),
                    };
                    info.export_map.insert(e.name.to_string(), kind);
                    info.exports.push((e.name.to_string(), kind));
                }
            }
            Payload::StartSection { func, .. } => info.start = Some(func),
            Payload::ElementSection(reader) => {
                for elem in reader {
                    info.elems.push(elem_segment(elem.map_err(malformed)?)?);
                }
            }
            Payload::DataSection(reader) => {
                for data in reader {
                    let data = data.map_err(malformed)?;
                    let mode = match data.kind {
                        wasmparser::DataKind::Passive => DataMode::Passive,
                        wasmparser::DataKind::Active {
                            memory_index,
                            offset_expr,
                        } => DataMode::Active {
                            memory: memory_index,
                            offset: const_expr(&offset_expr)?,
                        },
                    };
                    let start = info.data_bytes.len();
                    info.data_bytes.extend_from_slice(data.data);
                    info.data.push(DataSegment {
                        mode,
                        range: start..info.data_bytes.len(),
                    });
                }
            }
            Payload::CodeSectionEntry(body) => {
                let range = body.range();
                info.bodies.push(FunctionBody {
                    range: range.start as usize..range.end as usize,
                });
            }
            Payload::CustomSection(section) => {
                if let wasmparser::KnownCustom::Name(names) = section.as_known() {
                    // A broken name section is not an error (the spec says
                    // custom sections must not affect validity).
                    let _ = read_names(names, &mut info);
                }
            }
            _ => {}
        }
    }
    if info.bodies.len() != info.functions.len() - info.num_imported_funcs as usize {
        return Err(Error::Malformed {
            offset: wasm.len(),
            message: "function and code section have inconsistent lengths".into(),
        });
    }
    Ok(info)
}

fn read_names(names: wasmparser::NameSectionReader<'_>, info: &mut ModuleInfo) -> Result<()> {
    for name in names {
        match name.map_err(malformed)? {
            wasmparser::Name::Module { name, .. } => info.module_name = Some(name.to_string()),
            wasmparser::Name::Function(map) => {
                for naming in map {
                    let naming = naming.map_err(malformed)?;
                    info.func_names
                        .insert(naming.index, naming.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn unsupported(feature: String) -> Error {
    Error::Unsupported { feature, offset: 0 }
}

fn val_type(ty: wasmparser::ValType) -> Result<ValType> {
    Ok(match ty {
        wasmparser::ValType::I32 => ValType::I32,
        wasmparser::ValType::I64 => ValType::I64,
        wasmparser::ValType::F32 => ValType::F32,
        wasmparser::ValType::F64 => ValType::F64,
        wasmparser::ValType::V128 => return Err(unsupported("simd".into())),
        wasmparser::ValType::Ref(r) => ref_type(r)?,
    })
}

fn ref_type(ty: wasmparser::RefType) -> Result<ValType> {
    if ty == wasmparser::RefType::FUNCREF {
        Ok(ValType::FuncRef)
    } else if ty == wasmparser::RefType::EXTERNREF {
        Ok(ValType::ExternRef)
    } else {
        Err(unsupported(format!("reference type {ty}")))
    }
}

fn table_type(ty: &wasmparser::TableType) -> Result<TableType> {
    let limit = |v: u64| u32::try_from(v).map_err(|_| unsupported("table64".into()));
    Ok(TableType {
        element: ref_type(ty.element_type)?,
        minimum: limit(ty.initial)?,
        maximum: ty.maximum.map(limit).transpose()?,
    })
}

fn memory_type(ty: &wasmparser::MemoryType) -> MemoryType {
    MemoryType {
        minimum: ty.initial,
        maximum: ty.maximum,
    }
}

fn global_type(ty: &wasmparser::GlobalType) -> Result<GlobalType> {
    Ok(GlobalType {
        content: val_type(ty.content_type)?,
        mutable: ty.mutable,
    })
}

/// Reads a constant expression: exactly one value-producing operator then `end`.
fn const_expr(expr: &wasmparser::ConstExpr<'_>) -> Result<ConstExpr> {
    use wasmparser::Operator as Op;
    let mut reader = expr.get_operators_reader();
    let value = match reader.read().map_err(malformed)? {
        Op::I32Const { value } => ConstExpr::I32(value),
        Op::I64Const { value } => ConstExpr::I64(value),
        Op::F32Const { value } => ConstExpr::F32(value.bits()),
        Op::F64Const { value } => ConstExpr::F64(value.bits()),
        Op::RefNull { hty } => ConstExpr::RefNull(match hty {
            wasmparser::HeapType::FUNC => ValType::FuncRef,
            wasmparser::HeapType::EXTERN => ValType::ExternRef,
            other => return Err(unsupported(format!("ref.null {other:?}"))),
        }),
        Op::RefFunc { function_index } => ConstExpr::RefFunc(function_index),
        Op::GlobalGet { global_index } => ConstExpr::GlobalGet(global_index),
        other => return Err(unsupported(format!("constant expression with {other:?}"))),
    };
    match reader.read().map_err(malformed)? {
        Op::End => Ok(value),
        other => Err(unsupported(format!(
            "extended constant expression with {other:?}"
        ))),
    }
}

fn elem_segment(elem: wasmparser::Element<'_>) -> Result<ElemSegment> {
    let mode = match elem.kind {
        wasmparser::ElementKind::Passive => ElemMode::Passive,
        wasmparser::ElementKind::Declared => ElemMode::Declared,
        wasmparser::ElementKind::Active {
            table_index,
            offset_expr,
        } => ElemMode::Active {
            table: table_index.unwrap_or(0),
            offset: const_expr(&offset_expr)?,
        },
    };
    let (element_type, items) = match elem.items {
        wasmparser::ElementItems::Functions(reader) => {
            let items = reader
                .into_iter()
                .map(|f| f.map(ConstExpr::RefFunc).map_err(malformed))
                .collect::<Result<Vec<_>>>()?;
            (ValType::FuncRef, items)
        }
        wasmparser::ElementItems::Expressions(ty, reader) => {
            let items = reader
                .into_iter()
                .map(|e| e.map_err(malformed).and_then(|e| const_expr(&e)))
                .collect::<Result<Vec<_>>>()?;
            (ref_type(ty)?, items)
        }
    };
    Ok(ElemSegment {
        element_type,
        mode,
        items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    fn engine() -> Engine {
        Engine::new(Config::default()).expect("engine")
    }

    #[test]
    fn extracts_imports_exports_and_segments() {
        let info = parse(
            &engine(),
            br#"(module $m
                (import "env" "f" (func $f (param i32) (result i32)))
                (import "env" "g" (global i64))
                (memory (export "mem") 1 2)
                (table 3 funcref)
                (global $g (mut i32) (i32.const 7))
                (func $double (export "double") (param i32) (result i32)
                    (i32.add (local.get 0) (local.get 0)))
                (elem (i32.const 1) $double $f)
                (data (i32.const 8) "hi")
                (data "passive"))"#,
        )
        .expect("valid module");
        assert_eq!(info.num_imported_funcs, 1);
        assert_eq!(info.num_imported_globals, 1);
        assert_eq!(info.functions.len(), 2);
        assert_eq!(info.bodies.len(), 1);
        assert_eq!(
            info.memories,
            vec![MemoryType {
                minimum: 1,
                maximum: Some(2)
            }]
        );
        assert_eq!(info.export_map.get("double"), Some(&ExportKind::Func(1)));
        assert_eq!(info.global_inits, vec![ConstExpr::I32(7)]);
        assert_eq!(
            info.elems[0].items,
            vec![ConstExpr::RefFunc(1), ConstExpr::RefFunc(0)]
        );
        assert_eq!(info.data_segment_bytes(0), b"hi");
        assert_eq!(info.data[1].mode, DataMode::Passive);
        assert_eq!(info.module_name.as_deref(), Some("m"));
        assert_eq!(info.func_names.get(&1).map(String::as_str), Some("double"));
        assert_eq!(info.type_ids.len(), info.types.len());
    }

    #[test]
    fn rejects_garbage_with_an_offset() {
        let err = parse(&engine(), b"\0asm\x01\0\0\0\x01\xff").unwrap_err();
        assert!(matches!(err, Error::Malformed { .. }), "{err}");
    }

    #[test]
    fn rejects_invalid_code() {
        let err = parse(&engine(), br#"(module (func (result i32) (i64.const 1)))"#).unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }), "{err}");
        assert!(err.to_string().contains("type mismatch"), "{err}");
    }

    #[test]
    fn names_simd_as_unsupported() {
        let err = parse(
            &engine(),
            br#"(module (func (result v128) (v128.const i32x4 0 0 0 0)))"#,
        )
        .unwrap_err();
        match err {
            Error::Unsupported { feature, .. } => assert_eq!(feature, "simd"),
            other => panic!("expected unsupported simd, got {other}"),
        }
    }

    #[test]
    fn names_later_proposals_as_unsupported() {
        let err = parse(&engine(), br#"(module (memory 1) (memory 1))"#).unwrap_err();
        match err {
            Error::Unsupported { feature, .. } => assert_eq!(feature, "multi_memory"),
            other => panic!("expected unsupported multi_memory, got {other}"),
        }
    }

    #[test]
    fn text_errors_are_reported() {
        let err = parse(&engine(), b"(module (func (i32.bogus)))").unwrap_err();
        assert!(matches!(err, Error::Text(_)), "{err}");
    }
}
