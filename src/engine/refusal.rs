//! A create the API server refused for good, for every kind: the
//! controller hands it to the planner, which fails what needed the object
//! (a stage, a build) with the server's own message.

/// Why the API server would not create an object, as the planner is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The name is held by an object of another owner (a 409 on create),
    /// rather than the object itself rejected (400, 403, 404, 422).
    pub conflict: bool,
    /// What the server said (it names the field), or who holds the name.
    pub message: String,
}

/// Why a refused Job failed, as its stage or build reports it.
pub fn refusal_message(job: &str, refusal: &Refusal) -> String {
    if refusal.conflict {
        format!("JobConflict: {}", refusal.message)
    } else {
        format!("JobRefused: the API server refused Job {job}: {}", refusal.message)
    }
}
