use std::collections::HashMap;
use std::time::Duration;

use gpunet_sdk::task::pb;
use gpunet_sdk::task::spec as task;

use crate::*;

/// SIGKILL the real keeper binary mid-run, restart it on the same database: every task the
/// client saw accepted completes, with its own result, and a task the client saw complete
/// before the kill is not run again. Default durability (`immediate`: fdatasync per group).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_keeper_sigkill_restart_completes_every_accepted_task_once() {
    sigkill_restart("immediate", "1s").await;
}

/// The same with `durability = "process"`: acknowledged after `write(2)` to the log, no
/// fsync on the path — what the kernel holds must be enough to survive SIGKILL. Checkpoints
/// every 20 ms, so the kill also lands around log rotations and redb checkpoints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_keeper_sigkill_restart_process_durability_completes_every_accepted_task_once() {
    sigkill_restart("process", "20ms").await;
}

async fn sigkill_restart(durability: &str, checkpoint: &str) {
    let env = [
        ("GPUNET_KEEPER_DURABILITY", durability),
        ("GPUNET_KEEPER_CHECKPOINT_INTERVAL", checkpoint),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let user = key(1);
    let wkeys = [key(11), key(12)];
    let port = free_port();
    let cfg = keeper_config(tmp.path(), port, &user, &[&wkeys[0], &wkeys[1]]);
    let url = format!("http://127.0.0.1:{port}");
    let mut keeper = spawn_keeper_env(&cfg, &env);
    let mut workers = Vec::new();
    for k in &wkeys {
        let mut c = gpunet_worker::WorkerConfig::new(&url, "prov", k.clone());
        c.declared_gpus = Some(gpunet_worker::DeclaredGpus {
            count: 2,
            model: "sim".into(),
            memory_bytes: 1 << 30,
        });
        c.milli_cpus = 4000;
        c.work_dir = tmp.path().join(format!("w{}", workers.len()));
        c.backoff_max = Duration::from_millis(100);
        workers.push(gpunet_worker::spawn(c));
    }
    let client = connect(&url, &user).await;
    let mut watch = client.watch(&[]).await.unwrap();

    // Submit batches of echo tasks (payload = a unique label) and kill -9 mid-stream.
    let mut accepted: HashMap<u64, String> = HashMap::new();
    let mut seen_done_before: HashMap<u64, Vec<u8>> = HashMap::new();
    for batch in 0..40 {
        let specs: Vec<pb::TaskSpec> = (0..10)
            .map(|i| {
                let mut t = task::builtin("echo", format!("t{batch}-{i}"));
                // A little work so some tasks are running when the keeper dies.
                t.args = vec![task::arg_value("")];
                t
            })
            .collect();
        let mut slow = task::builtin("sleep", "30");
        slow.name = format!("slow{batch}");
        let mut all = specs.clone();
        all.push(slow);
        let labels: Vec<String> = (0..10)
            .map(|i| format!("t{batch}-{i}"))
            .chain([String::new()])
            .collect();
        if batch == 25 {
            // Make sure the client has seen some tasks complete before the kill (on a loaded
            // machine the first completions can lag the submissions), so that the "not re-run
            // after being reported complete" check below always has something to check.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while seen_done_before.is_empty() && tokio::time::Instant::now() < deadline {
                if let Ok(Some(Ok(ev))) =
                    tokio::time::timeout(Duration::from_millis(200), watch.message())
                        .await
                        .map(|r| r.transpose())
                {
                    let s = ev.status.unwrap();
                    if s.state == pb::TaskState::Finished as i32 {
                        seen_done_before.insert(s.task_id, Vec::new());
                    }
                }
            }
            keeper.kill().unwrap(); // SIGKILL
            let _ = keeper.wait();
        }
        match client.submit(all).await {
            Ok(ids) => {
                for (id, l) in ids.into_iter().zip(labels) {
                    accepted.insert(id, l);
                }
            }
            Err(_) => break,
        }
    }
    // Already dead (SIGKILL above); reaping again is harmless.
    let _ = keeper.kill();
    let _ = keeper.wait();
    assert!(accepted.len() >= 250, "accepted {}", accepted.len());
    // What the client saw complete before the kill.
    while let Ok(Some(Ok(ev))) = tokio::time::timeout(Duration::from_millis(50), watch.message())
        .await
        .map(|r| r.transpose())
    {
        let s = ev.status.unwrap();
        if s.state == pb::TaskState::Finished as i32 {
            seen_done_before.insert(s.task_id, Vec::new());
        }
    }

    let mut keeper = spawn_keeper_env(&cfg, &env);
    let client = connect(&url, &user).await;
    let mut ids: Vec<u64> = accepted.keys().copied().collect();
    ids.sort_unstable();
    for id in &ids {
        let r = client.get(*id, 0, Duration::from_secs(30)).await.unwrap();
        let st = r.status.unwrap();
        assert_eq!(
            st.state,
            pb::TaskState::Finished as i32,
            "task {id}: {st:?}"
        );
        let label = &accepted[id];
        if !label.is_empty() {
            assert_eq!(
                String::from_utf8_lossy(&r.data),
                *label,
                "task {id} has its own result"
            );
        }
    }
    // Listed once each, all finished.
    let listed = client
        .list(pb::TaskState::Finished, 0, 10_000)
        .await
        .unwrap();
    let mut count: HashMap<u64, u32> = HashMap::new();
    for s in &listed {
        *count.entry(s.task_id).or_default() += 1;
    }
    assert!(ids.iter().all(|id| count.get(id) == Some(&1)));
    // Tasks seen finished before the kill were not re-run (their attempt count is 1).
    let before: Vec<u64> = seen_done_before
        .keys()
        .copied()
        .filter(|id| accepted.contains_key(id))
        .collect();
    assert!(!before.is_empty(), "some tasks finished before the kill");
    for s in client.status(&before).await.unwrap() {
        assert_eq!(
            s.attempts, 1,
            "task {} re-ran after being reported complete",
            s.task_id
        );
    }
    for w in workers {
        w.kill();
    }
    keeper.kill().unwrap();
    keeper.wait().unwrap();
}
