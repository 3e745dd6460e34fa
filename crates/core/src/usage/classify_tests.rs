use super::*;

const D: &str = "sha256:c1ee13b9a1a3b38904c3fc2dd6a908b762cd9ad6b666e7d02f7419deba78d4e4";
const DOCKER: &str =
    "docker/24.0.7 go/go1.20.10 os/linux arch/amd64 UpstreamClient(Docker-Client/24.0.7 \\(linux\\)),gzip(gfe)";

fn source() -> ObjectRef {
    ObjectRef {
        bucket: "demo-gcr-logs".into(),
        name: "accessLog_usage_2024_03_11_14_00_00_00cbe51e4b703105e9_v0".into(),
        generation: Some(1710169200123456),
    }
}

/// A docker blob pull from gcr.io, the most common row; tests change what they are about.
fn pull() -> UsageRow<'static> {
    UsageRow {
        line: 3,
        row: 2,
        time_micros: 1710166032118406,
        c_ip: "198.51.100.23".into(),
        c_ip_type: Some(1),
        cs_method: "GET".into(),
        cs_uri: format!("/artifacts.demo-project.appspot.com/containers/images/{D}").into(),
        sc_status: 200,
        cs_bytes: 0,
        sc_bytes: 7023,
        time_taken_micros: 1002,
        cs_host: "storage.googleapis.com".into(),
        cs_referer: format!("https://gcr.io/v2/demo-project/app/blobs/{D}").into(),
        cs_user_agent: DOCKER.into(),
        s_request_id: "ADPycl1".into(),
        cs_operation: "GET_Object".into(),
        cs_bucket: "artifacts.demo-project.appspot.com".into(),
        cs_object: format!("containers/images/{D}").into(),
        invalid_utf8: false,
    }
}

fn with(change: impl FnOnce(&mut UsageRow<'static>)) -> UsageRow<'static> {
    let mut row = pull();
    change(&mut row);
    row
}

fn action_of(change: impl FnOnce(&mut UsageRow<'static>)) -> Action {
    classify(&with(change), &source()).action
}

#[test]
fn a_docker_pull_in_full() {
    let (row, src) = (pull(), source());
    let e = classify(&row, &src);
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["event_time"], "2024-03-11T14:07:12.118406Z");
    assert_eq!(
        (e.registry_host, e.project.as_deref(), e.repository, e.digest),
        (Some("gcr.io"), Some("demo-project"), Some("demo-project/app"), Some(D))
    );
    assert_eq!(json["image"], "gcr.io/demo-project/app");
    assert_eq!(
        (e.target, e.action, e.success, e.caller_class),
        (Target::Blob, Action::Pull, true, CallerClass::EndUser)
    );
    assert_eq!((e.client_family, e.client_version), (ClientFamily::Docker, Some("24.0.7")));
    assert!(!e.user_agent.ends_with("gzip(gfe)"));
    assert_eq!((e.request_bytes, e.response_bytes, e.client_ip, e.request_id), (0, 7023, "198.51.100.23", "ADPycl1"));
    assert_eq!((json["source_generation"].as_u64(), e.source_row, e.source_line), (Some(1710169200123456), 2, 3));
    assert_eq!(json["source_object"], src.name);
    assert_eq!(json.as_object().unwrap().len(), 34, "flat: one key per field");
    assert_eq!(
        (&json["source_kind"], &json["artifact_format"]),
        (&serde_json::json!("usage_log"), &serde_json::json!("docker"))
    );
    assert_eq!((&json["principal"], &json["reference"]), (&serde_json::Value::Null, &serde_json::Value::Null));
}

#[test]
fn target_rule() {
    let e = |r: UsageRow| classify(&r, &source()).target;
    assert_eq!(e(pull()), Target::Blob);
    assert_eq!(e(with(|r| r.cs_object = "containers/repositories/library/app/manifest".into())), Target::Object);
    assert_eq!(e(with(|r| r.cs_object = "".into())), Target::Bucket);
    assert_eq!(
        e(with(|r| r.cs_bucket = "release-artifacts".into())),
        Target::Object,
        "blob shape needs a registry bucket"
    );
}

#[test]
fn head_and_options_move_no_content() {
    assert_eq!(action_of(|r| r.cs_method = "HEAD".into()), Action::Other);
    assert_eq!(
        action_of(|r| (r.cs_method, r.cs_operation) = ("HEAD".into(), "GET_Object_Metadata".into())),
        Action::Other
    );
    assert_eq!(action_of(|r| r.cs_method = "OPTIONS".into()), Action::Other);
}

#[test]
fn known_operations_decide() {
    for (op, method, expected) in [
        ("GET_Object", "GET", Action::Pull),
        ("storage.objects.get", "GET", Action::Pull),
        ("GET_Object_Metadata", "GET", Action::Other),
        ("PUT_Object", "PUT", Action::Push),
        ("POST_Object", "POST", Action::Push),
        ("storage.objects.insert", "POST", Action::Push),
        ("COMPOSE_Object", "POST", Action::Push),
        ("DELETE_Object", "DELETE", Action::Delete),
        ("storage.objects.delete", "DELETE", Action::Delete),
        ("LIST_Objects", "GET", Action::List),
        ("PATCH_Object", "PATCH", Action::Admin),
        ("storage.objects.patch", "PATCH", Action::Admin),
    ] {
        assert_eq!(action_of(|r| (r.cs_operation, r.cs_method) = (op.into(), method.into())), expected, "{op}");
    }
}

#[test]
fn unknown_operations_are_admin_or_other() {
    for op in
        ["GET_Bucket_IamPolicy", "PUT_ObjectAcl", "storage.buckets.get", "GET_Notification", "SET_RetentionPolicy"]
    {
        assert_eq!(action_of(|r| r.cs_operation = op.into()), Action::Admin, "{op}");
    }
    assert_eq!(action_of(|r| r.cs_operation = "RESTORE_Object".into()), Action::Other, "unknown: never a pull");
}

#[test]
fn empty_operation_falls_back_to_the_method() {
    let empty = |method: &str, object: &str, uri: &str| {
        let (method, object, uri) = (method.to_string(), object.to_string(), uri.to_string());
        action_of(move |r| {
            r.cs_operation = "".into();
            (r.cs_method, r.cs_object, r.cs_uri) = (method.into(), object.into(), uri.into());
        })
    };
    let blob = format!("containers/images/{D}");
    let xml = format!("/artifacts.demo-project.appspot.com/containers/images/{D}");
    assert_eq!(empty("GET", &blob, &xml), Action::Pull);
    assert_eq!(empty("PUT", &blob, &xml), Action::Push);
    assert_eq!(empty("DELETE", &blob, &xml), Action::Delete);
    assert_eq!(empty("PATCH", &blob, &xml), Action::Admin);
    assert_eq!(empty("get", &blob, &xml), Action::Other, "methods are case-sensitive");
    assert_eq!(empty("GET", "", "/storage/v1/b/artifacts.demo-project.appspot.com/o?prefix=c"), Action::List);
    assert_eq!(empty("GET", "", "/storage/v1/b/artifacts.demo-project.appspot.com?fields=name"), Action::Admin);
    assert_eq!(empty("GET", "", "/artifacts.demo-project.appspot.com?prefix=containers"), Action::List);
    assert_eq!(empty("GET", "", "/artifacts.demo-project.appspot.com?acl"), Action::Admin);
    assert_eq!(empty("DELETE", "", "/artifacts.demo-project.appspot.com"), Action::Admin);
    assert_eq!(empty("POST", "", "/storage/v1/b?project=p"), Action::Admin);
}

#[test]
fn json_api_reads_without_alt_media_are_metadata() {
    let json = |uri: &str| {
        let uri = uri.to_string();
        action_of(move |r| (r.cs_operation, r.cs_uri) = ("storage.objects.get".into(), uri.into()))
    };
    assert_eq!(
        json("/storage/v1/b/artifacts.demo-project.appspot.com/o/containers%2Fimages%2Fsha256%3Ac1"),
        Action::Other
    );
    assert_eq!(json("/download/storage/v1/b/a/o/containers%2Fimages%2Fsha256%3Ac1?alt=media"), Action::Pull);
    assert_eq!(json("/storage/v1/b/a/o/x?generation=1&alt=media"), Action::Pull);
}

#[test]
fn non_registry_buckets_download_and_upload() {
    let other = |r: &mut UsageRow| {
        r.cs_bucket = "release-artifacts".into();
        r.cs_object = "v1.2.3/tool-linux-amd64.tar.gz".into();
        r.cs_referer = "".into();
        r.cs_user_agent = "curl/8.5.0".into();
    };
    let e = |change: fn(&mut UsageRow)| {
        let mut row = with(other);
        change(&mut row);
        let src = source();
        let e = classify(&row, &src);
        (
            e.registry_host.map(str::to_string),
            e.project.is_some(),
            e.digest.is_some(),
            e.target,
            e.action,
            e.caller_class,
        )
    };
    assert_eq!(e(|_| {}), (None, false, false, Target::Object, Action::Download, CallerClass::EndUser));
    assert_eq!(e(|r| (r.cs_method, r.cs_operation) = ("PUT".into(), "PUT_Object".into())).4, Action::Upload);
    assert_eq!(e(|r| (r.cs_method, r.cs_operation) = ("DELETE".into(), "DELETE_Object".into())).4, Action::Delete);
    assert_eq!(e(|r| (r.cs_operation, r.cs_object) = ("GET_Bucket".into(), "".into())).4, Action::Admin);
    assert_eq!(e(|r| r.cs_user_agent = "apitools gsutil/5.27 Python/3.11.8".into()).5, CallerClass::EndUser);
}

#[test]
fn success_rule() {
    for (status, ok) in [
        (200, true),
        (206, true),
        (204, true),
        (304, true),
        (302, false),
        (401, false),
        (403, false),
        (404, false),
        (500, false),
    ] {
        assert_eq!(classify(&with(|r| r.sc_status = status), &source()).success, ok, "{status}");
    }
}

#[test]
fn repository_needs_a_matching_referer() {
    let repo =
        |referer: String| classify(&with(|r| r.cs_referer = referer.into()), &source()).repository.map(str::to_string);
    assert_eq!(
        repo(format!("https://us.gcr.io/v2/demo-project/batch/worker/blobs/{D}")).as_deref(),
        Some("demo-project/batch/worker")
    );
    assert_eq!(repo("".into()), None);
    assert_eq!(repo("https://console.cloud.google.com/".into()), None);
    let other = "sha256:03850a17933d669871306d6eda058b778f2e86d729a8b9c993737d44911903c0";
    assert_eq!(repo(format!("https://gcr.io/v2/demo-project/app/blobs/{other}")), None, "another blob's redirect");
    let e = classify(&with(|r| r.cs_object = "containers/repositories/x".into()), &source()).repository.is_none();
    assert!(e, "only blobs are attributed");
}

#[test]
fn registry_host_comes_from_the_bucket_image_from_the_referer() {
    let row = with(|r| {
        r.cs_bucket = "us.artifacts.k8s-artifacts-prod.appspot.com".into();
        r.cs_referer = format!("https://k8s.gcr.io/v2/pause/blobs/{D}").into();
    });
    let src = source();
    let e = classify(&row, &src);
    assert_eq!((e.registry_host, e.project.as_deref()), (Some("us.gcr.io"), Some("k8s-artifacts-prod")));
    assert_eq!(e.image.map(|i| i.to_string()).as_deref(), Some("k8s.gcr.io/pause"));
}

#[test]
fn caller_class_rules() {
    let class = |change: fn(&mut UsageRow)| classify(&with(change), &source()).caller_class;
    assert_eq!(class(|r| r.cs_user_agent = "GCS Lifecycle Management".into()), CallerClass::GoogleInternalOrAutomation);
    assert_eq!(class(|r| r.cs_operation = "GET_Bucket".into()), CallerClass::OwnerAdmin);
    assert_eq!(class(|r| (r.cs_operation, r.cs_object) = ("LIST_Objects".into(), "".into())), CallerClass::OwnerAdmin);
    assert_eq!(class(|r| r.cs_user_agent = "gcloud/465.0.0 command/gcloud.storage.cp".into()), CallerClass::OwnerAdmin);
    assert_eq!(
        class(|r| {
            r.cs_referer = "https://console.cloud.google.com/".into();
            r.cs_user_agent = "Mozilla/5.0 (X11) Chrome/122.0.0.0 Safari/537.36".into();
        }),
        CallerClass::OwnerAdmin
    );
    assert_eq!(class(|r| r.cs_user_agent = "Mozilla/5.0 Firefox/123.0".into()), CallerClass::EndUser);
    assert_eq!(class(|r| r.cs_user_agent = "python-requests/2.31.0".into()), CallerClass::GoogleInternalOrAutomation);
    assert_eq!(class(|r| r.cs_user_agent = "".into()), CallerClass::GoogleInternalOrAutomation);
    assert_eq!(class(|r| r.cs_user_agent = "containerd/v1.7.13".into()), CallerClass::EndUser);
    assert_eq!(
        class(|r| r.cs_user_agent = "trivy/0.49".into()),
        CallerClass::EndUser,
        "unknown agents are not guessed"
    );
}

#[test]
fn invalid_utf8_rows_still_classify() {
    let row = with(|r| {
        r.cs_object = "containers/images/\u{fffd}".into();
        r.invalid_utf8 = true;
    });
    let src = source();
    let e = classify(&row, &src);
    assert_eq!((e.target, e.action, e.invalid_utf8, e.digest), (Target::Object, Action::Download, true, None));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_row_classifies_and_serialises(
            method in "(GET|HEAD|PUT|POST|DELETE|PATCH|get|)",
            operation in "(GET_Object|LIST_Objects|DELETE_Object|PUT_Object|storage\\.objects\\.get|[A-Za-z_.]{0,12})",
            bucket in "((us|eu|asia|xx)\\.)?(artifacts\\.)?[a-z0-9.-]{0,12}(\\.appspot\\.com)?",
            object in "(containers/images/sha256:[0-9a-f]{64}|.{0,20})",
            referer in "(https://[a-z.]{0,10}gcr\\.io/v2/[a-z/]{0,20}/blobs/sha256:[0-9a-f]{64}|.{0,30})",
            user_agent in ".{0,40}",
            uri in "/.{0,30}",
            status in any::<u16>(),
        ) {
            let row = with(|r| {
                (r.cs_method, r.cs_operation, r.cs_bucket, r.cs_object) = (method.into(), operation.into(), bucket.into(), object.into());
                (r.cs_referer, r.cs_user_agent, r.cs_uri, r.sc_status) = (referer.into(), user_agent.into(), uri.into(), status);
            });
            let src = source();
            let e = classify(&row, &src);
            prop_assert!(serde_json::to_string(&e).is_ok());
            if e.target == Target::Bucket {
                prop_assert!(!matches!(e.action, Action::Pull | Action::Push | Action::Download | Action::Upload));
            }
            prop_assert_eq!(e.repository.is_some(), e.image.is_some());
            prop_assert!(e.repository.is_none() || e.target == Target::Blob);
            prop_assert_eq!(e.digest.is_some(), e.target == Target::Blob);
            prop_assert_eq!(e.registry_host.is_some(), e.project.is_some());
        }
    }
}
