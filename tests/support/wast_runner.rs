//! Runs the directives of one `.wast` script against one [`Engine`]: one
//! [`Store`] and one [`Linker`] per script, the `spectest` module defined in
//! it, modules instantiated and remembered by name, assertions checked.
//!
//! Every directive is one outcome for the [`Reporter`]: passed or failed
//! (with why). A panic inside a directive is caught and is a failure of that
//! directive; the script goes on with the next one.

use crate::support::configs::SpecConfig;
use crate::support::report::{Position, Reporter};
use crate::support::{spectest, traps, values};
use shoal_instance::{Engine, Error, Instance, Linker, Module, Store, Val};
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use wast::core::ModuleKind;
use wast::parser::{self, ParseBuffer};
use wast::{QuoteWat, Wast, WastDirective, WastExecute, WastInvoke, Wat};

/// Parses `text` (a `.wast` script) the way the suite's own harness does.
pub fn parse<'a>(buffer: &'a ParseBuffer<'a>) -> Result<Wast<'a>, String> {
    parser::parse::<Wast<'a>>(buffer).map_err(|e| e.to_string())
}

/// A parse buffer over `text` that accepts the suite's confusable Unicode
/// (names.wast uses it on purpose).
pub fn buffer(text: &str) -> Result<ParseBuffer<'_>, String> {
    let mut lexer = wast::lexer::Lexer::new(text);
    lexer.allow_confusing_unicode(true);
    ParseBuffer::new_with_lexer(lexer).map_err(|e| e.to_string())
}

/// Directives not to run, by 1-based `(line, col)`, with the failure to
/// report for each: those that crashed the process in an earlier attempt.
pub type Poisoned = HashMap<(usize, usize), String>;

/// Runs the whole script `text` and reports every directive.
pub fn run_script(engine: &Engine, text: &str, poisoned: &Poisoned, reporter: &mut dyn Reporter) {
    let whole = Position {
        line: 1,
        col: 1,
        directive: "script",
    };
    let parsed = buffer(text).and_then(|b| {
        let mut wast = parse(&b)?;
        let directives = std::mem::take(&mut wast.directives);
        let mut runner = ScriptRunner::new(engine)?;
        for directive in directives {
            runner.run(text, directive, poisoned, reporter);
        }
        if let Some(calls) = &runner.epoch_calls {
            reporter.info(&format!(
                "the epoch deadline callback ran {} times in this script",
                calls.load(std::sync::atomic::Ordering::Relaxed)
            ));
        }
        Ok(())
    });
    if let Err(why) = parsed {
        reporter.begin(whole);
        reporter.fail(&format!("cannot run the script: {why}"));
    }
}

/// What a `module` directive left behind under its name.
#[derive(Clone)]
enum Slot {
    Ready(Instance),
    /// The module did not compile or instantiate (its directive failed);
    /// later uses fail with this note instead of reaching another module.
    Broken(String),
}

struct ScriptRunner {
    engine: Engine,
    store: Store<()>,
    linker: Linker<()>,
    /// The most recent module: the target of `invoke` without a name.
    current: Option<Slot>,
    /// Modules by `$name`.
    named: HashMap<String, Slot>,
    /// `module definition`s, by name, and the most recent one.
    definitions: HashMap<String, Module>,
    last_definition: Option<Module>,
    /// How often the epoch deadline callback ran (epoch configurations).
    epoch_calls: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
}

/// An `Err` of a directive: why it failed.
type Outcome = Result<(), String>;

impl ScriptRunner {
    fn new(engine: &Engine) -> Result<ScriptRunner, String> {
        let mut store = Store::new(engine, ());
        let epoch_calls = SpecConfig::setup_store(engine, &mut store);
        let mut linker = Linker::new(engine);
        spectest::define(&mut linker, &mut store)
            .map_err(|e| format!("cannot define the spectest module: {e}"))?;
        Ok(ScriptRunner {
            engine: engine.clone(),
            store,
            linker,
            current: None,
            named: HashMap::new(),
            definitions: HashMap::new(),
            last_definition: None,
            epoch_calls,
        })
    }

    /// Runs one directive (catching panics) and reports its outcome.
    fn run(
        &mut self,
        text: &str,
        directive: WastDirective<'_>,
        poisoned: &Poisoned,
        reporter: &mut dyn Reporter,
    ) {
        let (line, col) = directive.span().linecol_in(text);
        let at = Position {
            line: line + 1,
            col: col + 1,
            directive: directive_name(&directive),
        };
        reporter.begin(at);
        let position = format!("{}:{}", at.line, at.col);
        if let Some(why) = poisoned.get(&(at.line, at.col)) {
            self.poison(&directive, &position, why);
            reporter.fail(why);
            return;
        }
        let mut notes = Vec::new();
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            self.directive(directive, &position, &mut notes)
        }));
        for note in &notes {
            reporter.info(note);
        }
        match outcome {
            Ok(Ok(())) => reporter.pass(),
            Ok(Err(why)) => reporter.fail(&why),
            Err(payload) => reporter.fail(&format!("panicked: {}", panic_message(&*payload))),
        }
    }

    fn directive(
        &mut self,
        directive: WastDirective<'_>,
        position: &str,
        notes: &mut Vec<String>,
    ) -> Outcome {
        use WastDirective as D;
        match directive {
            D::Module(mut module) => {
                let name = module.name().map(|id| id.name().to_string());
                let result = self.instantiate_quote(&mut module);
                let slot = match &result {
                    Ok(instance) => Slot::Ready(*instance),
                    Err(why) => Slot::Broken(format!("the module at {position} failed: {why}")),
                };
                if let Some(name) = name {
                    self.named.insert(name, slot.clone());
                }
                self.current = Some(slot);
                result.map(|_| ())
            }
            D::ModuleDefinition(mut module) => {
                let name = module.name().map(|id| id.name().to_string());
                let bytes = encode(&mut module)?;
                let compiled = self.compile(&bytes)?;
                if let Some(name) = name {
                    self.definitions.insert(name, compiled.clone());
                }
                self.last_definition = Some(compiled);
                Ok(())
            }
            D::ModuleInstance {
                instance, module, ..
            } => {
                let definition = match module {
                    Some(id) => self.definitions.get(id.name()).cloned(),
                    None => self.last_definition.clone(),
                }
                .ok_or_else(|| "no such module definition".to_string())?;
                let result = self.instantiate(&definition);
                let slot = match &result {
                    Ok(i) => Slot::Ready(*i),
                    Err(why) => Slot::Broken(format!("the instance at {position} failed: {why}")),
                };
                if let Some(id) = instance {
                    self.named.insert(id.name().to_string(), slot.clone());
                }
                self.current = Some(slot);
                result.map(|_| ())
            }
            D::Register { name, module, .. } => {
                let instance = self.instance(module.map(|id| id.name()))?;
                self.linker
                    .instance(&mut self.store, name, instance)
                    .map(|_| ())
                    .map_err(|e| format!("register failed: {}", describe_error(&e)))
            }
            D::Invoke(invoke) => match self.invoke(&invoke)? {
                Ok(_) => Ok(()),
                Err(e) => Err(format!("invoke failed: {}", describe_error(&e))),
            },
            D::AssertReturn {
                mut exec, results, ..
            } => match self.execute(&mut exec)? {
                Ok(values) => values::check_results(&values, &results),
                Err(e) => Err(format!("expected a return, got {}", describe_error(&e))),
            },
            D::AssertTrap {
                mut exec, message, ..
            } => match self.execute(&mut exec)? {
                Err(Error::Trap(trap)) => traps::check(trap.kind, message),
                Err(e) => Err(format!(
                    "expected trap `{message}`, got {}",
                    describe_error(&e)
                )),
                Ok(values) => Err(format!(
                    "expected trap `{message}`, returned [{}]",
                    describe_values(&values)
                )),
            },
            D::AssertExhaustion { call, message, .. } => match self.invoke(&call)? {
                Err(Error::Trap(trap)) => traps::check(trap.kind, message),
                Err(e) => Err(format!(
                    "expected trap `{message}`, got {}",
                    describe_error(&e)
                )),
                Ok(values) => Err(format!(
                    "expected trap `{message}`, returned [{}]",
                    describe_values(&values)
                )),
            },
            D::AssertInvalid {
                mut module,
                message,
                ..
            } => self.assert_rejected(&mut module, message, "invalid", notes),
            D::AssertMalformed {
                mut module,
                message,
                ..
            } => self.assert_rejected(&mut module, message, "malformed", notes),
            D::AssertUnlinkable {
                mut module,
                message,
                ..
            } => {
                let bytes = module
                    .encode()
                    .map_err(|e| format!("the wast crate cannot encode the module: {e}"))?;
                let compiled = self.compile(&bytes)?;
                match self.linker.instantiate(&mut self.store, &compiled) {
                    Ok(_) => Err(format!("instantiated, expected a link error `{message}`")),
                    Err(Error::Trap(trap)) => Err(format!(
                        "expected a link error `{message}`, got {}",
                        describe_error(&Error::Trap(trap))
                    )),
                    Err(e) => {
                        if !matches!(e, Error::Link { .. }) {
                            notes.push(format!(
                                "link error of an unexpected kind (expected `{message}`): {e}"
                            ));
                        }
                        Ok(())
                    }
                }
            }
            D::AssertInvalidCustom { .. }
            | D::AssertMalformedCustom { .. }
            | D::AssertException { .. }
            | D::AssertSuspension { .. }
            | D::Thread(_)
            | D::Wait { .. } => {
                Err("the runner does not support this directive (not WebAssembly 2.0)".into())
            }
        }
    }

    /// Records that `directive` was not run because it crashed the process
    /// before: a module it would have defined is broken.
    fn poison(&mut self, directive: &WastDirective<'_>, position: &str, why: &str) {
        let broken = || Slot::Broken(format!("the module at {position} was not run: {why}"));
        let name = match directive {
            WastDirective::Module(module) => module.name(),
            WastDirective::ModuleInstance { instance, .. } => *instance,
            _ => return,
        };
        if let Some(id) = name {
            self.named.insert(id.name().to_string(), broken());
        }
        self.current = Some(broken());
    }

    /// `assert_invalid` / `assert_malformed`: the module must not compile.
    /// Text the `wast` crate itself rejects counts as rejected.
    fn assert_rejected(
        &mut self,
        module: &mut QuoteWat<'_>,
        message: &str,
        expected: &str,
        notes: &mut Vec<String>,
    ) -> Outcome {
        let text_form = matches!(module, QuoteWat::QuoteModule(..))
            || matches!(module, QuoteWat::Wat(Wat::Module(m)) if matches!(m.kind, ModuleKind::Text(_)));
        let bytes = match module.encode() {
            Ok(bytes) => bytes,
            Err(e) => {
                notes.push(format!("rejected by the text parser: {}", e.message()));
                return Ok(());
            }
        };
        match Module::new(&self.engine, &bytes) {
            Ok(_) => {
                let via = if text_form && expected == "malformed" {
                    " (its text was accepted by the wast crate)"
                } else {
                    ""
                };
                Err(format!(
                    "module compiled, expected it to be {expected}: `{message}`{via}"
                ))
            }
            Err(e) => {
                let kind_matches = match expected {
                    "invalid" => matches!(e, Error::Invalid { .. } | Error::Unsupported { .. }),
                    _ => matches!(e, Error::Malformed { .. } | Error::Unsupported { .. }),
                };
                let kind = if kind_matches {
                    ""
                } else {
                    " (another kind of error)"
                };
                notes.push(format!(
                    "expected {expected} `{message}`, error was{kind}: {e}"
                ));
                Ok(())
            }
        }
    }

    /// The instance an `invoke`/`get`/`register` names (or the current one).
    fn instance(&self, name: Option<&str>) -> Result<Instance, String> {
        let slot = match name {
            Some(name) => self
                .named
                .get(name)
                .ok_or_else(|| format!("no module named `{name}`"))?,
            None => self
                .current
                .as_ref()
                .ok_or_else(|| "no module instantiated yet".to_string())?,
        };
        match slot {
            Slot::Ready(instance) => Ok(*instance),
            Slot::Broken(why) => Err(why.clone()),
        }
    }

    fn compile(&self, bytes: &[u8]) -> Result<Module, String> {
        Module::new(&self.engine, bytes)
            .map_err(|e| format!("compile error: {}", describe_error(&e)))
    }

    fn instantiate(&mut self, module: &Module) -> Result<Instance, String> {
        self.linker
            .instantiate(&mut self.store, module)
            .map_err(|e| format!("instantiation failed: {}", describe_error(&e)))
    }

    fn instantiate_quote(&mut self, module: &mut QuoteWat<'_>) -> Result<Instance, String> {
        let bytes = encode(module)?;
        let compiled = self.compile(&bytes)?;
        self.instantiate(&compiled)
    }

    /// Calls an export. The outer `Err` is a failure before the call (no
    /// such module or export, bad argument); the inner result is the call's.
    fn invoke(&mut self, invoke: &WastInvoke<'_>) -> Result<Result<Vec<Val>, Error>, String> {
        let instance = self.instance(invoke.module.map(|id| id.name()))?;
        let func = instance
            .get_func(&self.store, invoke.name)
            .ok_or_else(|| format!("no exported function `{}`", invoke.name))?;
        let args = invoke
            .args
            .iter()
            .map(values::arg_to_val)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(func.call(&mut self.store, &args))
    }

    /// Runs the action of an `assert_return` / `assert_trap`.
    fn execute(&mut self, exec: &mut WastExecute<'_>) -> Result<Result<Vec<Val>, Error>, String> {
        match exec {
            WastExecute::Invoke(invoke) => self.invoke(invoke),
            WastExecute::Get { module, global, .. } => {
                let instance = self.instance(module.map(|id| id.name()))?;
                let global = instance
                    .get_global(&self.store, global)
                    .ok_or_else(|| format!("no exported global `{global}`"))?;
                Ok(Ok(vec![global.get(&self.store)]))
            }
            WastExecute::Wat(module) => {
                let bytes = module
                    .encode()
                    .map_err(|e| format!("the wast crate cannot encode the module: {e}"))?;
                let compiled = self.compile(&bytes)?;
                Ok(self
                    .linker
                    .instantiate(&mut self.store, &compiled)
                    .map(|_| Vec::new()))
            }
        }
    }
}

/// The binary of a `module` directive (text, `binary` or `quote` form).
fn encode(module: &mut QuoteWat<'_>) -> Result<Vec<u8>, String> {
    module
        .encode()
        .map_err(|e| format!("the wast crate cannot encode the module: {e}"))
}

fn directive_name(directive: &WastDirective<'_>) -> &'static str {
    use WastDirective as D;
    match directive {
        D::Module(_) => "module",
        D::ModuleDefinition(_) => "module definition",
        D::ModuleInstance { .. } => "module instance",
        D::AssertMalformed { .. } => "assert_malformed",
        D::AssertInvalid { .. } => "assert_invalid",
        D::AssertInvalidCustom { .. } => "assert_invalid_custom",
        D::AssertMalformedCustom { .. } => "assert_malformed_custom",
        D::Register { .. } => "register",
        D::Invoke(_) => "invoke",
        D::AssertTrap { .. } => "assert_trap",
        D::AssertReturn { .. } => "assert_return",
        D::AssertExhaustion { .. } => "assert_exhaustion",
        D::AssertUnlinkable { .. } => "assert_unlinkable",
        D::AssertException { .. } => "assert_exception",
        D::AssertSuspension { .. } => "assert_suspension",
        D::Thread(_) => "thread",
        D::Wait { .. } => "wait",
    }
}

/// An error as one line: traps by kind (and where), others by message.
fn describe_error(e: &Error) -> String {
    match e {
        Error::Trap(trap) => {
            let mut s = format!("trap `{}` ({:?})", trap.kind.message(), trap.kind);
            if let Some(m) = &trap.message {
                s.push_str(&format!(": {m}"));
            }
            if let Some(top) = trap.backtrace.first() {
                s.push_str(&format!(" in {top}"));
            }
            s
        }
        other => format!("error: {other}"),
    }
}

fn describe_values(values: &[Val]) -> String {
    values
        .iter()
        .map(values::describe_val)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The message of a caught panic: the one the panic hook recorded, with
/// its location, or the payload itself.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(recorded) = crate::support::panics::take_last() {
        return recorded;
    }
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a non-string payload)".to_string()
    }
}
