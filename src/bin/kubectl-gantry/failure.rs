//! What goes wrong, said in one line with an exit code that tells a script
//! which kind of wrong it was. Never a Rust backtrace.

use std::fmt;
use std::process::ExitCode;

/// A failure the plugin reports as `error: MESSAGE` and exits with `code`.
#[derive(Debug)]
pub struct CliError {
    message: String,
    code: u8,
}

/// The run did not succeed (`watch`, `logs -f`).
pub const EXIT_RUN_FAILED: u8 = 1;
/// Bad input: an unknown run or stage, a stage with no attempt yet, a bad flag.
pub const EXIT_BAD_INPUT: u8 = 2;
/// No cluster to talk to: no kubeconfig, an unknown context, nothing answering.
pub const EXIT_NO_CLUSTER: u8 = 3;
/// The API server refused or failed a request.
pub const EXIT_API: u8 = 4;
/// A bug in the plugin.
pub const EXIT_INTERNAL: u8 = 70;

impl CliError {
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self { message: message.into(), code: EXIT_BAD_INPUT }
    }

    pub fn no_cluster(message: impl Into<String>) -> Self {
        Self { message: message.into(), code: EXIT_NO_CLUSTER }
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self { message: message.into(), code: EXIT_INTERNAL }
    }

    /// The run did not succeed (or is gone): exit 1 with `message`.
    pub fn run_failed(message: impl Into<String>) -> Self {
        Self { message: message.into(), code: EXIT_RUN_FAILED }
    }

    /// The exit code it reports.
    pub fn code(&self) -> u8 {
        self.code
    }

    /// A failed API request about `what` (e.g. `pipelinerun "x" in namespace "y"`):
    /// 404 is bad input (it does not exist), a connection failure means no
    /// cluster, anything else an API error.
    pub fn api(what: &str, error: kube::Error) -> Self {
        match &error {
            kube::Error::Api(status) if status.code == 404 => Self::bad_input(format!("{what} not found")),
            kube::Error::Api(status) => {
                Self { message: format!("{what}: {} ({})", one_line(&status.message), status.code), code: EXIT_API }
            }
            kube::Error::HyperError(_) | kube::Error::Service(_) => {
                Self::no_cluster(format!("cannot reach the cluster for {what}: {}", one_line(&error.to_string())))
            }
            other => Self { message: format!("{what}: {}", one_line(&other.to_string())), code: EXIT_API },
        }
    }

    /// Prints the error to stderr and gives the exit code.
    pub fn report(&self) -> ExitCode {
        eprintln!("error: {}", self.message);
        ExitCode::from(self.code)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

/// `text` on one line: newlines and runs of spaces become one space.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A panic prints one line and exits with [`EXIT_INTERNAL`]: a user sees what
/// broke, not a backtrace.
pub fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        let place = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        eprintln!("error: internal error{place}: {} (please report it)", one_line(&what));
        std::process::exit(i32::from(EXIT_INTERNAL));
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(kube::core::Status { code, message: message.into(), ..Default::default() }))
    }

    #[test]
    fn a_missing_object_is_bad_input_naming_it() {
        let e = CliError::api("pipelinerun \"x\" in namespace \"ci\"", api_error(404, "not found"));
        assert_eq!(e.code, EXIT_BAD_INPUT);
        assert_eq!(e.to_string(), "pipelinerun \"x\" in namespace \"ci\" not found");
    }

    #[test]
    fn a_refused_request_is_an_api_error_on_one_line() {
        let e = CliError::api("pipelinerun \"x\"", api_error(403, "forbidden:\n  no access"));
        assert_eq!(e.code, EXIT_API);
        assert_eq!(e.to_string(), "pipelinerun \"x\": forbidden: no access (403)");
    }
}
