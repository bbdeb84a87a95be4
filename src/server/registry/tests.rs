use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

fn receivers<T: Clone + Ord>(registry: &mut Registry<T>, target: &Target) -> Vec<T> {
    let mut got = Vec::new();
    registry.for_each_target(target, |_, value| got.push(value.clone()));
    got.sort_unstable();
    got
}

fn add<T>(registry: &mut Registry<T>, id: ClientId, path: &str, value: T) {
    registry.insert(id, path.into(), None, &[], value);
}

#[test]
fn targets_pick_everyone_a_path_or_one_client() {
    let mut registry = Registry::default();
    let (a, b, c) = (ClientId::random(), ClientId::random(), ClientId::random());
    add(&mut registry, a, "/chat", "a");
    add(&mut registry, b, "/chat", "b");
    add(&mut registry, c, "/news", "c");
    assert_eq!(receivers(&mut registry, &Target::All), ["a", "b", "c"]);
    assert_eq!(
        receivers(&mut registry, &Target::Path("/chat".into())),
        ["a", "b"]
    );
    assert_eq!(
        receivers(&mut registry, &Target::Path("/none".into())),
        Vec::<&str>::new()
    );
    assert_eq!(receivers(&mut registry, &Target::Client(c)), ["c"]);
    assert_eq!(
        receivers(&mut registry, &Target::Client(ClientId::random())),
        Vec::<&str>::new()
    );
}

#[test]
fn users_groups_and_lists_of_ids_pick_their_members() {
    let mut registry = Registry::default();
    let ids: Vec<ClientId> = (0..4).map(|_| ClientId::random()).collect();
    let ops = ["ops".to_owned()];
    registry.insert(ids[0], "/a".into(), Some("alice".into()), &ops, 0);
    registry.insert(ids[1], "/b".into(), Some("alice".into()), &[], 1);
    registry.insert(ids[2], "/a".into(), Some("bob".into()), &ops, 2);
    registry.insert(ids[3], "/a".into(), None, &[], 3);
    assert_eq!(
        receivers(&mut registry, &Target::User("alice".into())),
        [0, 1]
    );
    assert_eq!(
        receivers(&mut registry, &Target::User("Alice".into())),
        Vec::<i32>::new()
    );
    assert_eq!(
        receivers(&mut registry, &Target::Group("ops".into())),
        [0, 2]
    );
    assert!(registry.join(ids[3], "ops"));
    assert!(registry.join(ids[3], "ops"), "joining twice is harmless");
    assert_eq!(
        receivers(&mut registry, &Target::Group("ops".into())),
        [0, 2, 3]
    );
    assert!(registry.leave(ids[0], "ops"));
    assert!(registry.leave(ids[0], "ops"), "leaving twice is harmless");
    assert!(!registry.join(ClientId::random(), "ops"));
    assert!(!registry.leave(ClientId::random(), "ops"));
    assert_eq!(
        receivers(&mut registry, &Target::Group("ops".into())),
        [2, 3]
    );
    assert!(registry.is_member(ids[2], "ops"));
    assert!(!registry.is_member(ids[0], "ops"));
    let list = Target::clients(vec![ids[3], ids[1], ids[3], ClientId::random()]);
    assert_eq!(receivers(&mut registry, &list), [1, 3]);
    assert!(!registry.holds_all(&list));
    assert!(registry.holds_all(&Target::clients(vec![ids[0], ids[1]])));
    registry.remove(ids[2]);
    assert_eq!(receivers(&mut registry, &Target::Group("ops".into())), [3]);
    assert_eq!(
        receivers(&mut registry, &Target::User("bob".into())),
        Vec::<i32>::new()
    );
}

#[test]
fn removal_keeps_the_path_index_right_and_reuses_slots() {
    let mut registry = Registry::default();
    let ids: Vec<ClientId> = (0..5).map(|_| ClientId::random()).collect();
    let names = ["0", "1", "2", "3", "4"];
    for (id, name) in ids.iter().zip(names) {
        add(&mut registry, *id, "/p", name);
    }
    assert_eq!(registry.remove(ids[1]), Some(("/p".to_owned(), "1")));
    assert_eq!(registry.remove(ids[1]), None);
    registry.remove(ids[4]);
    assert_eq!(
        receivers(&mut registry, &Target::Path("/p".into())),
        ["0", "2", "3"]
    );
    let late = ClientId::random();
    add(&mut registry, late, "/q", "late");
    assert_eq!(registry.len(), 4);
    assert_eq!(registry.path_len("/p"), 3);
    for id in &ids {
        registry.remove(*id);
    }
    assert_eq!(registry.path_len("/p"), 0);
    assert_eq!(receivers(&mut registry, &Target::All), ["late"]);
}

#[test]
fn compaction_after_a_burst_keeps_every_route_and_gives_room_back() {
    let mut registry = Registry::default();
    let ids: Vec<ClientId> = (0..1000).map(|_| ClientId::random()).collect();
    for (i, id) in ids.iter().enumerate() {
        let path = if i % 2 == 0 { "/even" } else { "/odd" };
        let groups = [format!("g{}", i % 3)];
        registry.insert(*id, path.into(), Some(format!("u{}", i % 7)), &groups, i);
    }
    // Most leave; the survivors are spread all over the slab.
    let stay: Vec<usize> = (0..1000).filter(|i| i % 10 == 3 || i % 10 == 4).collect();
    for (i, id) in ids.iter().enumerate() {
        if !stay.contains(&i) {
            registry.remove(*id);
        }
    }
    let before = registry.slots.capacity();
    registry.compact_if_sparse();
    assert!(
        registry.slots.capacity() <= before / 2,
        "{}",
        registry.slots.capacity()
    );
    assert!(registry.free.is_empty());
    assert_eq!(receivers(&mut registry, &Target::All), stay);
    for &i in &stay {
        assert_eq!(receivers(&mut registry, &Target::Client(ids[i])), [i]);
    }
    let pick =
        |f: &dyn Fn(usize) -> bool| stay.iter().copied().filter(|&i| f(i)).collect::<Vec<_>>();
    assert_eq!(
        receivers(&mut registry, &Target::Path("/odd".into())),
        pick(&|i| i % 2 == 1)
    );
    assert_eq!(
        receivers(&mut registry, &Target::Group("g1".into())),
        pick(&|i| i % 3 == 1)
    );
    assert_eq!(
        receivers(&mut registry, &Target::User("u5".into())),
        pick(&|i| i % 7 == 5)
    );
    // Removal after compaction still keeps the indexes right.
    registry.remove(ids[3]);
    registry.remove(ids[14]);
    assert_eq!(
        receivers(&mut registry, &Target::Path("/even".into())),
        pick(&|i| i % 2 == 0 && i != 14)
    );
    assert_eq!(
        receivers(&mut registry, &Target::Group("g2".into())),
        pick(&|i| i % 3 == 2 && i != 14)
    );
    // A half-full registry is left alone.
    let slots = registry.slots.len();
    registry.compact_if_sparse();
    assert_eq!(registry.slots.len(), slots);
}

/// One step of a registry's life.
#[derive(Debug, Clone)]
enum Step {
    Insert {
        client: usize,
        path: u8,
        user: Option<u8>,
        groups: Vec<u8>,
    },
    Remove(usize),
    Join(usize, u8),
    Leave(usize, u8),
    Compact,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..12usize, 0..3u8, proptest::option::of(0..3u8), proptest::collection::vec(0..4u8, 0..3))
            .prop_map(|(client, path, user, groups)| Step::Insert { client, path, user, groups }),
        2 => (0..12usize).prop_map(Step::Remove),
        3 => (0..12usize, 0..4u8).prop_map(|(c, g)| Step::Join(c, g)),
        2 => (0..12usize, 0..4u8).prop_map(|(c, g)| Step::Leave(c, g)),
        1 => Just(Step::Compact),
    ]
}

/// A client as the model files it: path, user, groups.
type Filing = (u8, Option<u8>, BTreeSet<u8>);
/// What the registry should hold: client number to its filing.
type Model = BTreeMap<usize, Filing>;

proptest! {
    /// Any sequence of arrivals, departures, joins, leaves and compactions leaves every
    /// target naming exactly the clients a plain model says it should.
    #[test]
    fn every_target_matches_a_plain_model(steps in proptest::collection::vec(step(), 1..80)) {
        let ids: Vec<ClientId> = (0..12).map(|_| ClientId::random()).collect();
        let mut registry: Registry<usize> = Registry::default();
        let mut model = Model::new();
        for step in steps {
            match step {
                Step::Insert { client, path, user, groups } => {
                    let names: Vec<String> = groups.iter().map(|g| format!("g{g}")).collect();
                    registry.insert(ids[client], format!("/p{path}"), user.map(|u| format!("u{u}")), &names, client);
                    model.insert(client, (path, user, groups.into_iter().collect()));
                }
                Step::Remove(client) => {
                    let removed = registry.remove(ids[client]).map(|(_, v)| v);
                    prop_assert_eq!(removed, model.remove(&client).map(|_| client));
                }
                Step::Join(client, group) => {
                    let known = registry.join(ids[client], &format!("g{group}"));
                    prop_assert_eq!(known, model.contains_key(&client));
                    if let Some((_, _, groups)) = model.get_mut(&client) {
                        groups.insert(group);
                    }
                }
                Step::Leave(client, group) => {
                    let known = registry.leave(ids[client], &format!("g{group}"));
                    prop_assert_eq!(known, model.contains_key(&client));
                    if let Some((_, _, groups)) = model.get_mut(&client) {
                        groups.remove(&group);
                    }
                }
                Step::Compact => registry.compact_if_sparse(),
            }
            let expect = |f: &dyn Fn(&Filing) -> bool| {
                model.iter().filter(|(_, v)| f(v)).map(|(c, _)| *c).collect::<Vec<_>>()
            };
            prop_assert_eq!(receivers(&mut registry, &Target::All), expect(&|_| true));
            prop_assert_eq!(registry.len(), model.len());
            for k in 0..4u8 {
                prop_assert_eq!(
                    receivers(&mut registry, &Target::Path(format!("/p{k}"))),
                    expect(&|(p, _, _)| *p == k)
                );
                prop_assert_eq!(
                    receivers(&mut registry, &Target::User(format!("u{k}"))),
                    expect(&|(_, u, _)| *u == Some(k))
                );
                prop_assert_eq!(
                    receivers(&mut registry, &Target::Group(format!("g{k}"))),
                    expect(&|(_, _, g)| g.contains(&k))
                );
            }
            for (client, (_, _, groups)) in &model {
                let mut got: Vec<&str> = registry.groups(ids[*client]).collect();
                got.sort_unstable();
                let want: Vec<String> = groups.iter().map(|g| format!("g{g}")).collect();
                prop_assert_eq!(got, want.iter().map(String::as_str).collect::<Vec<_>>());
            }
        }
    }
}
