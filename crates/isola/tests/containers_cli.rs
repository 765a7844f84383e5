//! End-to-end: the container commands as a docker user types them:
//! `inspect` falling back to images, `container <verb>` for every
//! container command.

mod common;

use common::Root;

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn inspect_falls_back_to_the_image_when_no_container_has_the_name() {
    let root = Root::new();
    let image_id = root.ok(&["images", "-q", "--no-trunc", "busybox"]);
    let image_id = image_id.trim();
    let v = json(&root.ok(&["inspect", "busybox"]));
    assert_eq!(v.as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v[0]["Id"], image_id, "{v}");
    assert_eq!(v[0]["RepoTags"][0], "busybox:latest", "{v}");
    assert_eq!(
        root.ok(&["inspect", "-f", "{{.Id}}", "busybox"]).trim(),
        image_id
    );

    // A container of that name comes first, as with docker; --type picks.
    let id = root.ok(&["create", "--name", "busybox", "busybox", "true"]);
    let id = id.trim();
    let v = json(&root.ok(&["inspect", "busybox"]));
    assert_eq!(v[0]["Id"], id, "{v}");
    let v = json(&root.ok(&["inspect", "--type", "image", "busybox"]));
    assert_eq!(v[0]["Id"], image_id, "{v}");
    let v = json(&root.ok(&["inspect", "--type", "container", "busybox"]));
    assert_eq!(v[0]["Id"], id, "{v}");

    // Found and not found together: what was found, one line per miss, exit 1.
    let out = root.run(&["inspect", "busybox", "nothing-here", image_id]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(v.as_array().map(Vec::len), Some(2), "{v}");
    assert_eq!(v[1]["Id"], image_id, "{v}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "isola: no such object: nothing-here\n"
    );
    let (_, err) = root.fails(&["inspect", "--type", "container", image_id]);
    assert_eq!(err, format!("isola: no such container: {image_id}\n"));
    root.ok(&["rm", id]);
}
