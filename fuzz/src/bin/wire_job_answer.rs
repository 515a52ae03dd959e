//! Fuzz target `wire_job_answer` (see `blindfold_fuzz::targets::wire_job_answer`).

fn main() {
    blindfold_fuzz::run("wire_job_answer", blindfold_fuzz::targets::wire_job_answer);
}
