//! The state machine and the template that deploys it agree.

use std::collections::HashMap;

/// Each function's `Timeout` in infra/template.yaml, by the ARN placeholder the state
/// machine names it with (`${FetchChunkFunctionArn}`).
fn function_timeouts() -> HashMap<String, u64> {
    let template = include_str!("../../infra/template.yaml");
    let mut timeouts = HashMap::new();
    let mut resource = None;
    for line in template.lines() {
        // Resources are the template's two-space-indented keys.
        if let Some(name) = line.strip_prefix("  ").and_then(|rest| rest.strip_suffix(':'))
            && !name.starts_with(' ')
        {
            resource = Some(name.to_string());
        }
        if let (Some(name), Some(seconds)) = (&resource, line.trim().strip_prefix("Timeout: ")) {
            timeouts.insert(format!("${{{name}Arn}}"), seconds.parse().expect("a whole number of seconds"));
        }
    }
    timeouts
}

fn tasks<'a>(states: &'a serde_json::Value, found: &mut Vec<(String, &'a serde_json::Value)>) {
    for (name, state) in states.as_object().expect("states").iter() {
        if state["Type"] == "Task" {
            found.push((name.clone(), state));
        }
        if let Some(inner) = state.get("ItemProcessor").or_else(|| state.get("Iterator")) {
            tasks(&inner["States"], found);
        }
    }
}

/// A Task that waits for its function longer than the function can run would leave a
/// hung invocation unnoticed; one that gives up first fails with States.Timeout, which
/// the state machine retries.
#[test]
fn every_task_gives_up_before_its_function_times_out() {
    let asl: serde_json::Value =
        serde_json::from_str(include_str!("../../statemachine/sync.asl.json")).expect("the ASL is JSON");
    let timeouts = function_timeouts();
    let mut found = Vec::new();
    tasks(&asl["States"], &mut found);
    assert!(found.len() >= 6, "the sync's tasks: {}", found.len());
    for (name, task) in found {
        let resource = task["Resource"].as_str().expect("a function");
        let function_timeout = timeouts.get(resource).unwrap_or_else(|| panic!("{name}: {resource} has no Timeout"));
        let task_timeout = task["TimeoutSeconds"].as_u64().unwrap_or_else(|| panic!("{name} has no TimeoutSeconds"));
        assert!(task_timeout < *function_timeout, "{name}: {task_timeout} s is not under {function_timeout} s");
    }
}
