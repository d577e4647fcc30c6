//! Agents that call agents: agent tools (`{ agent = "…" }`) and a router's routes. The
//! settings' references must name declared agents, must not form a cycle, and must not
//! chain deeper than [`MAX_AGENT_DEPTH`]; agents are then built callees first.

use std::collections::{BTreeMap, HashMap};

use super::settings::AgentSettings;
use crate::InvalidSetting;

/// How many agents one turn may go through below the agent called: an agent that calls an
/// agent that calls an agent is depth 2. A deeper chain is refused at start-up.
pub const MAX_AGENT_DEPTH: usize = 4;

/// Checks every reference of `agents` to another agent: it names a declared agent, no
/// chain of references comes back to where it started (the error names the cycle), and no
/// chain is deeper than [`MAX_AGENT_DEPTH`].
pub fn check_references(agents: &[AgentSettings]) -> Result<(), InvalidSetting> {
    let index: HashMap<&str, usize> = agents
        .iter()
        .enumerate()
        .map(|(i, agent)| (agent.name.as_str(), i))
        .collect();
    for (i, agent) in agents.iter().enumerate() {
        for (key, name) in agent.called_agents() {
            if !index.contains_key(name) {
                return Err(InvalidSetting::new(
                    format!("agents[{i}].{key}"),
                    format!("{name:?}"),
                    format!("there is no agent named {name:?}"),
                ));
            }
        }
    }
    let mut depth = vec![None::<usize>; agents.len()];
    for start in 0..agents.len() {
        let mut path = Vec::new();
        visit(agents, &index, start, &mut path, &mut depth)?;
    }
    Ok(())
}

/// Depth-first: the depth below `at`, or the error of a cycle through `path`.
fn visit(
    agents: &[AgentSettings],
    index: &HashMap<&str, usize>,
    at: usize,
    path: &mut Vec<usize>,
    depth: &mut [Option<usize>],
) -> Result<usize, InvalidSetting> {
    if let Some(known) = depth[at] {
        return Ok(known);
    }
    if let Some(position) = path.iter().position(|&p| p == at) {
        let mut cycle: Vec<&str> = path[position..]
            .iter()
            .map(|&p| agents[p].name.as_str())
            .collect();
        cycle.push(agents[at].name.as_str());
        let from = path[path.len() - 1];
        let (key, _) = agents[from]
            .called_agents()
            .into_iter()
            .find(|(_, name)| *name == agents[at].name)
            .unwrap_or_default();
        return Err(InvalidSetting::new(
            format!("agents[{from}].{key}"),
            format!("{:?}", agents[at].name),
            format!(
                "the agents call each other in a cycle: {}",
                cycle.join(" -> ")
            ),
        ));
    }
    path.push(at);
    let mut deepest = 0;
    for (_, name) in agents[at].called_agents() {
        if let Some(&next) = index.get(name) {
            deepest = deepest.max(1 + visit(agents, index, next, path, depth)?);
        }
    }
    path.pop();
    if deepest > MAX_AGENT_DEPTH {
        return Err(InvalidSetting::new(
            format!("agents[{at}]"),
            format!("{:?}", agents[at].name),
            format!(
                "calls agents {deepest} deep (agent tools and routes), more than the bound of \
                 {MAX_AGENT_DEPTH}"
            ),
        ));
    }
    depth[at] = Some(deepest);
    Ok(deepest)
}

/// The indexes of `agents` in an order where every agent comes after those it calls
/// (references to unknown agents are ignored; [`check_references`] refuses them).
pub(crate) fn build_order(agents: &[AgentSettings]) -> Vec<usize> {
    let index: BTreeMap<&str, usize> = agents
        .iter()
        .enumerate()
        .map(|(i, agent)| (agent.name.as_str(), i))
        .collect();
    let mut placed = vec![false; agents.len()];
    let mut order = Vec::with_capacity(agents.len());
    fn place(
        at: usize,
        agents: &[AgentSettings],
        index: &BTreeMap<&str, usize>,
        placed: &mut [bool],
        order: &mut Vec<usize>,
        guard: usize,
    ) {
        if placed[at] || guard > agents.len() {
            return;
        }
        for (_, name) in agents[at].called_agents() {
            if let Some(&next) = index.get(name) {
                place(next, agents, index, placed, order, guard + 1);
            }
        }
        if !placed[at] {
            placed[at] = true;
            order.push(at);
        }
    }
    for at in 0..agents.len() {
        place(at, agents, &index, &mut placed, &mut order, 0);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::ToolSettings;

    fn agent(name: &str, calls: &[&str]) -> AgentSettings {
        AgentSettings {
            name: name.to_owned(),
            tools: calls
                .iter()
                .map(|c| ToolSettings::Agent((*c).to_owned()))
                .collect(),
            ..AgentSettings::default()
        }
    }

    #[test]
    fn a_cycle_is_refused_naming_it() {
        let agents = [agent("a", &["b"]), agent("b", &["c"]), agent("c", &["a"])];
        let error = check_references(&agents).unwrap_err();
        assert!(error.reason.contains("a -> b -> c -> a"), "{error}");
        assert_eq!(error.key, "agents[2].tools[0].agent");
    }

    #[test]
    fn unknown_agents_and_deep_chains_are_refused() {
        let error = check_references(&[agent("a", &["ghost"])]).unwrap_err();
        assert!(error.to_string().contains("\"ghost\""), "{error}");
        let chain: Vec<AgentSettings> = (0..=MAX_AGENT_DEPTH + 1)
            .map(|i| {
                let next = format!("a{}", i + 1);
                if i == MAX_AGENT_DEPTH + 1 {
                    agent(&format!("a{i}"), &[])
                } else {
                    agent(&format!("a{i}"), &[next.as_str()])
                }
            })
            .collect();
        let error = check_references(&chain).unwrap_err();
        assert!(error.reason.contains("deep"), "{error}");
        assert!(check_references(&chain[1..]).is_ok());
    }

    #[test]
    fn callees_are_built_first() {
        let agents = [agent("a", &["b", "c"]), agent("b", &["c"]), agent("c", &[])];
        assert_eq!(build_order(&agents), [2, 1, 0]);
    }
}
