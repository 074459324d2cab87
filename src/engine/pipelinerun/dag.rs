//! The stage graph: dependency order, cycles, ancestors and descendants.
//!
//! Stages are referred to by their index in `spec.stages`; `Graph` is built
//! once per reconcile from names that validation has already checked.

use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::api::pipelinerun::Stage;

/// Dependency edges between stages, by index.
#[derive(Debug, Clone)]
pub struct Graph {
    /// `needs[i]`: the stages stage `i` needs.
    pub needs: Vec<Vec<usize>>,
    /// `dependents[i]`: the stages that need stage `i`.
    pub dependents: Vec<Vec<usize>>,
}

/// Why the stages do not form a DAG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphError {
    /// Stage `stage` needs `missing`, which is not a stage of the run.
    UnknownNeed { stage: String, missing: String },
    /// These stages need each other in a circle (listed in cycle order).
    Cycle { stages: Vec<String> },
}

impl Graph {
    /// Builds the graph; fails on a `needs` entry that names no stage.
    pub fn build(stages: &[Stage]) -> Result<Self, GraphError> {
        let index: HashMap<&str, usize> = stages.iter().enumerate().map(|(i, s)| (s.name.as_str(), i)).collect();
        let mut needs = vec![Vec::new(); stages.len()];
        let mut dependents = vec![Vec::new(); stages.len()];
        for (i, stage) in stages.iter().enumerate() {
            for need in &stage.needs {
                let Some(&j) = index.get(need.as_str()) else {
                    return Err(GraphError::UnknownNeed { stage: stage.name.clone(), missing: need.clone() });
                };
                if !needs[i].contains(&j) {
                    needs[i].push(j);
                    dependents[j].push(i);
                }
            }
        }
        Ok(Self { needs, dependents })
    }

    /// Stage indices in an order where every stage comes after the stages it
    /// needs (Kahn's algorithm, ties broken by spec order); fails on a cycle.
    pub fn topological_order(&self, stages: &[Stage]) -> Result<Vec<usize>, GraphError> {
        let mut remaining: Vec<usize> = self.needs.iter().map(Vec::len).collect();
        let mut ready: VecDeque<usize> = (0..remaining.len()).filter(|&i| remaining[i] == 0).collect();
        let mut order = Vec::with_capacity(remaining.len());
        while let Some(i) = ready.pop_front() {
            order.push(i);
            for &d in &self.dependents[i] {
                remaining[d] -= 1;
                if remaining[d] == 0 {
                    ready.push_back(d);
                }
            }
        }
        if order.len() == remaining.len() {
            Ok(order)
        } else {
            Err(GraphError::Cycle {
                stages: self.find_cycle(&remaining).into_iter().map(|i| stages[i].name.clone()).collect(),
            })
        }
    }

    /// One cycle among the stages Kahn's algorithm could not order: walk
    /// unresolved needs until a stage repeats.
    fn find_cycle(&self, remaining: &[usize]) -> Vec<usize> {
        let start = remaining.iter().position(|&r| r > 0).expect("a cycle leaves a stage unresolved");
        let mut path = vec![start];
        let mut current = start;
        loop {
            let next =
                *self.needs[current].iter().find(|&&n| remaining[n] > 0).expect("an unresolved stage needs another");
            if let Some(pos) = path.iter().position(|&p| p == next) {
                let mut cycle = path[pos..].to_vec();
                cycle.reverse();
                return cycle;
            }
            path.push(next);
            current = next;
        }
    }

    /// Every stage `i` needs, directly or through others.
    pub fn ancestors(&self, i: usize) -> BTreeSet<usize> {
        Self::reach(i, &self.needs)
    }

    /// Every stage that needs `i`, directly or through others.
    pub fn descendants(&self, i: usize) -> BTreeSet<usize> {
        Self::reach(i, &self.dependents)
    }

    fn reach(start: usize, edges: &[Vec<usize>]) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut todo = edges[start].clone();
        while let Some(i) = todo.pop() {
            if seen.insert(i) {
                todo.extend(&edges[i]);
            }
        }
        seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stages(spec: &[(&str, &[&str])]) -> Vec<Stage> {
        spec.iter()
            .map(|(name, needs)| Stage {
                name: name.to_string(),
                needs: needs.iter().map(|n| n.to_string()).collect(),
                ..Default::default()
            })
            .collect()
    }

    fn names(stages: &[Stage], order: &[usize]) -> Vec<String> {
        order.iter().map(|&i| stages[i].name.clone()).collect()
    }

    #[test]
    fn orders_a_flatcar_chain_after_its_needs() {
        let s = stages(&[
            ("image", &["packages"]),
            ("sdk", &[]),
            ("packages", &["sdk"]),
            ("test-qemu", &["image"]),
            ("vms", &["image"]),
        ]);
        let g = Graph::build(&s).unwrap();
        let order = names(&s, &g.topological_order(&s).unwrap());
        assert_eq!(order, ["sdk", "packages", "image", "test-qemu", "vms"]);
    }

    #[test]
    fn names_the_unknown_need() {
        let s = stages(&[("a", &["nope"])]);
        assert_eq!(
            Graph::build(&s).unwrap_err(),
            GraphError::UnknownNeed { stage: "a".into(), missing: "nope".into() }
        );
    }

    #[test]
    fn reports_the_stages_of_a_cycle_in_order() {
        let s = stages(&[("start", &[]), ("a", &["start", "c"]), ("b", &["a"]), ("c", &["b"]), ("after", &["c"])]);
        let g = Graph::build(&s).unwrap();
        let GraphError::Cycle { stages: cycle } = g.topological_order(&s).unwrap_err() else { panic!() };
        assert_eq!(cycle.len(), 3);
        for name in ["a", "b", "c"] {
            assert!(cycle.contains(&name.to_string()), "{cycle:?}");
        }
        // Each stage in the reported cycle needs the one before it.
        for w in 0..cycle.len() {
            let (prev, cur) = (&cycle[w], &cycle[(w + 1) % cycle.len()]);
            let cur_stage = s.iter().find(|st| &st.name == cur).unwrap();
            assert!(cur_stage.needs.contains(prev), "{cur} needs {prev} in {cycle:?}");
        }
    }

    #[test]
    fn a_stage_needing_itself_is_a_cycle() {
        let s = stages(&[("a", &["a"])]);
        let g = Graph::build(&s).unwrap();
        assert_eq!(g.topological_order(&s).unwrap_err(), GraphError::Cycle { stages: vec!["a".into()] });
    }

    #[test]
    fn ancestors_and_descendants_are_transitive() {
        let s = stages(&[("a", &[]), ("b", &["a"]), ("c", &["b"]), ("d", &["a"])]);
        let g = Graph::build(&s).unwrap();
        assert_eq!(g.ancestors(2), BTreeSet::from([0, 1]));
        assert_eq!(g.descendants(0), BTreeSet::from([1, 2, 3]));
        assert!(g.descendants(2).is_empty());
    }

    /// Random DAGs: each stage may need any earlier stage (so no cycles).
    fn random_dag() -> impl Strategy<Value = Vec<Stage>> {
        (1usize..25).prop_flat_map(|n| {
            proptest::collection::vec(proptest::collection::vec(any::<prop::sample::Index>(), 0..4), n).prop_map(
                move |picks| {
                    let names: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
                    let mut out: Vec<Stage> = picks
                        .iter()
                        .enumerate()
                        .map(|(i, p)| Stage {
                            name: names[i].clone(),
                            needs: if i == 0 {
                                vec![]
                            } else {
                                p.iter().map(|ix| names[ix.index(i)].clone()).collect()
                            },
                            ..Default::default()
                        })
                        .collect();
                    out.reverse(); // spec order need not be dependency order
                    out
                },
            )
        })
    }

    proptest! {
        #[test]
        fn every_stage_comes_after_its_needs(s in random_dag()) {
            let g = Graph::build(&s).unwrap();
            let order = g.topological_order(&s).unwrap();
            prop_assert_eq!(order.len(), s.len());
            let pos: HashMap<usize, usize> = order.iter().enumerate().map(|(p, &i)| (i, p)).collect();
            for (i, needs) in g.needs.iter().enumerate() {
                for &n in needs {
                    prop_assert!(pos[&n] < pos[&i]);
                }
            }
        }

        #[test]
        fn adding_a_back_edge_makes_a_cycle(s in random_dag()) {
            // Make the first-ordered stage need the last one when they are connected.
            let g = Graph::build(&s).unwrap();
            let order = g.topological_order(&s).unwrap();
            let (first, last) = (order[0], order[order.len() - 1]);
            let mut s2 = s.clone();
            s2[first].needs.push(s[last].name.clone());
            let g2 = Graph::build(&s2).unwrap();
            let cyclic = first == last || g.ancestors(last).contains(&first);
            prop_assert_eq!(g2.topological_order(&s2).is_err(), cyclic);
        }
    }
}
