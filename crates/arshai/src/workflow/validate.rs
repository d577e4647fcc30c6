//! The checks a workflow passes before it can run: every name it refers to exists, every
//! node is reachable, a cycle has a step bound, and routes, pointers and bounds make sense.

use std::collections::HashSet;

use super::definition::Workflow;
use super::error::DefinitionError;
use super::route::Route;
use super::state::is_pointer;

/// Checks that `name` is non-empty and URL-safe.
pub(crate) fn name(workflow: &str, name: &str) -> Result<(), DefinitionError> {
    let safe = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if safe {
        Ok(())
    } else {
        Err(DefinitionError::InvalidName {
            workflow: workflow.to_owned(),
            name: name.to_owned(),
        })
    }
}

/// Every check, in the order a reader would fix them.
pub(crate) fn workflow(workflow: &Workflow) -> Result<(), DefinitionError> {
    let name = workflow.name.as_str();
    if workflow.nodes.is_empty() {
        return Err(DefinitionError::Empty {
            workflow: name.to_owned(),
        });
    }
    check_route(workflow, "the entry", &workflow.entry)?;
    for node in &workflow.nodes {
        check_route(
            workflow,
            &format!("the edge from {:?}", node.name),
            &node.route,
        )?;
        if let Some(fallback) = &node.fallback {
            known(
                workflow,
                &format!("the fallback of {:?}", node.name),
                fallback,
            )?;
            if fallback == &node.name {
                return Err(DefinitionError::invalid(
                    name,
                    format!("node {:?} is its own fallback", node.name),
                ));
            }
        }
        if !is_pointer(&node.input) {
            return Err(DefinitionError::invalid(
                name,
                format!(
                    "the input of node {:?} is {:?}, not a JSON pointer (\"/input\", \"/triage\", \"\")",
                    node.name, node.input
                ),
            ));
        }
        if node.output.as_deref() == Some("") {
            return Err(DefinitionError::invalid(
                name,
                format!("the output key of node {:?} is empty", node.name),
            ));
        }
        if node.timeout.is_some_and(|t| t.is_zero()) {
            return Err(DefinitionError::invalid(
                name,
                format!("the timeout of node {:?} must be positive", node.name),
            ));
        }
    }
    if let Some(pointer) = &workflow.output
        && !is_pointer(pointer)
    {
        return Err(DefinitionError::invalid(
            name,
            format!("the output {pointer:?} is not a JSON pointer"),
        ));
    }
    let bounds = workflow.bounds;
    if bounds.max_steps == Some(0) {
        return Err(DefinitionError::invalid(
            name,
            "max_steps must be at least 1",
        ));
    }
    if bounds.timeout.is_some_and(|t| t.is_zero())
        || bounds.node_timeout.is_some_and(|t| t.is_zero())
    {
        return Err(DefinitionError::invalid(name, "timeouts must be positive"));
    }
    check_reachable(workflow)?;
    if bounds.max_steps.is_none()
        && let Some(cycle) = find_cycle(workflow)
    {
        return Err(DefinitionError::CycleWithoutBound {
            workflow: name.to_owned(),
            cycle,
        });
    }
    Ok(())
}

fn known(workflow: &Workflow, referenced_by: &str, node: &str) -> Result<(), DefinitionError> {
    if workflow.index.contains_key(node) {
        Ok(())
    } else {
        Err(DefinitionError::UnknownNode {
            workflow: workflow.name.clone(),
            referenced_by: referenced_by.to_owned(),
            node: node.to_owned(),
        })
    }
}

fn check_route(workflow: &Workflow, from: &str, route: &Route) -> Result<(), DefinitionError> {
    for target in route.targets() {
        known(workflow, from, target)?;
    }
    let name = workflow.name.as_str();
    match route {
        Route::End | Route::Next(_) => Ok(()),
        Route::Conditional { branches, .. } => {
            if branches.is_empty() {
                return Err(DefinitionError::invalid(
                    name,
                    format!("{from} is conditional but has no condition"),
                ));
            }
            for (condition, _) in branches {
                if !is_pointer(&condition.pointer) || condition.pointer.is_empty() {
                    return Err(DefinitionError::invalid(
                        name,
                        format!(
                            "{from} tests {:?}, which is not a JSON pointer into the state",
                            condition.pointer
                        ),
                    ));
                }
                if condition.equals.is_none() && condition.exists.is_none() {
                    return Err(DefinitionError::invalid(
                        name,
                        format!(
                            "{from} tests {:?} with neither `equals` nor `exists`",
                            condition.pointer
                        ),
                    ));
                }
            }
            Ok(())
        }
        Route::Chosen { targets, .. } if targets.is_empty() => Err(DefinitionError::invalid(
            name,
            format!("{from} has a router with no targets"),
        )),
        Route::Chosen { .. } => Ok(()),
        Route::Parallel { branches, join } => {
            if branches.is_empty() {
                return Err(DefinitionError::invalid(
                    name,
                    format!("{from} fans out to no branch"),
                ));
            }
            let mut seen = HashSet::new();
            for branch in branches {
                if !seen.insert(branch.as_str()) {
                    return Err(DefinitionError::invalid(
                        name,
                        format!("{from} fans out to {branch:?} twice"),
                    ));
                }
                if join.as_deref() == Some(branch.as_str()) {
                    return Err(DefinitionError::invalid(
                        name,
                        format!("{from} joins at {branch:?}, which is also one of its branches"),
                    ));
                }
                let route = workflow.node(branch).map(|node| &node.route);
                if !matches!(route, Some(Route::End) | None) {
                    return Err(DefinitionError::invalid(
                        name,
                        format!(
                            "node {branch:?} is a parallel branch of {from} and has edges of its own; \
                             the run goes on at the join (make a branch of several steps a workflow node)"
                        ),
                    ));
                }
            }
            Ok(())
        }
    }
}

/// Where the run can go from `node`: its route's targets and its fallback.
fn successors<'w>(workflow: &'w Workflow, node: &'w str) -> Vec<&'w str> {
    let Some(node) = workflow.node(node) else {
        return Vec::new();
    };
    let mut next = node.route.targets();
    next.extend(node.fallback.as_deref());
    next
}

fn check_reachable(workflow: &Workflow) -> Result<(), DefinitionError> {
    let mut seen: HashSet<&str> = HashSet::new();
    let mut stack: Vec<&str> = workflow.entry.targets();
    while let Some(node) = stack.pop() {
        if seen.insert(node) {
            stack.extend(successors(workflow, node));
        }
    }
    match workflow
        .nodes
        .iter()
        .find(|node| !seen.contains(node.name.as_str()))
    {
        Some(node) => Err(DefinitionError::Unreachable {
            workflow: workflow.name.clone(),
            node: node.name.clone(),
        }),
        None => Ok(()),
    }
}

/// A cycle of the graph (its nodes, the first repeated at the end), if it has one.
fn find_cycle(workflow: &Workflow) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let mut marks = vec![Mark::New; workflow.nodes.len()];
    for start in 0..workflow.nodes.len() {
        if marks[start] != Mark::New {
            continue;
        }
        // Depth-first, iteratively: the path and, per node on it, its successors left.
        let mut path: Vec<(usize, Vec<usize>)> = Vec::new();
        let next_of = |at: usize| -> Vec<usize> {
            successors(workflow, &workflow.nodes[at].name)
                .into_iter()
                .filter_map(|name| workflow.index.get(name).copied())
                .collect()
        };
        marks[start] = Mark::OnPath;
        path.push((start, next_of(start)));
        while let Some((_, pending)) = path.last_mut() {
            match pending.pop() {
                Some(next) => match marks[next] {
                    Mark::OnPath => {
                        let from = path.iter().position(|(at, _)| *at == next).unwrap_or(0);
                        let mut cycle: Vec<String> = path[from..]
                            .iter()
                            .map(|(at, _)| workflow.nodes[*at].name.clone())
                            .collect();
                        cycle.push(workflow.nodes[next].name.clone());
                        return Some(cycle);
                    }
                    Mark::New => {
                        marks[next] = Mark::OnPath;
                        path.push((next, next_of(next)));
                    }
                    Mark::Done => {}
                },
                None => {
                    if let Some((at, _)) = path.pop() {
                        marks[at] = Mark::Done;
                    }
                }
            }
        }
    }
    None
}
