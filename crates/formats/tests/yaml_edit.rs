//! Tests of `camsync_formats::yaml_edit`: golden edits of real-world-looking go2rtc and MediaMTX files
//! (inputs and expected outputs under `tests/yaml_edit/`), edge cases written inline, and
//! property tests over random edit sequences on files built from templates.
//!
//! Every edit is checked three ways: the exact output text, a splice check (the output is the
//! input with exactly one run of bytes replaced, and that run is the touched entry), and a
//! re-parse (the file reads as intended).
//!
//! Set `UPDATE_GOLDEN=1` to rewrite the expected files after an intended change, then review
//! the diff.

#[path = "../../../src/test_support.rs"]
mod test_support;

use camsync_formats::yaml_edit::{Change, Document, EditError};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// Helpers

fn fixture_path(name: &str) -> String {
    format!("{}/tests/yaml_edit/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixture_path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Compares `actual` with the expected file `name` (or rewrites it under `UPDATE_GOLDEN=1`).
fn golden(name: &str, actual: &str) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(fixture_path(name), actual).unwrap();
    }
    assert_eq!(actual, fixture(name), "golden file {name}");
}

fn crlf(text: &str) -> String {
    text.replace('\n', "\r\n")
}

fn doc(text: &str) -> Document {
    Document::parse(text).unwrap_or_else(|e| panic!("parse: {e}"))
}

fn upserted(text: &str, section: &str, key: &str, value: Value) -> String {
    let mut d = doc(text);
    d.upsert(section, key, &value)
        .unwrap_or_else(|e| panic!("upsert {key}: {e}"));
    d.text().to_owned()
}

fn removed(text: &str, section: &str, key: &str) -> String {
    let mut d = doc(text);
    d.remove(section, key)
        .unwrap_or_else(|e| panic!("remove {key}: {e}"));
    d.text().to_owned()
}

fn read(text: &str) -> Value {
    serde_saphyr::from_str::<Value>(text).unwrap_or_else(|e| panic!("re-parse: {e}"))
}

/// Asserts `after` is `before` with one run of bytes, `old`, replaced by `new`, and nothing
/// else changed.
#[track_caller]
fn assert_splice(before: &str, after: &str, old: &str, new: &str) {
    let prefix = before
        .bytes()
        .zip(after.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    let suffix = before
        .bytes()
        .rev()
        .zip(after.bytes().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let fits = before.len() - old.len() + new.len() == after.len()
        && (0..=prefix).any(|i| {
            before.len() - old.len() - i <= suffix
                && before.get(i..).is_some_and(|r| r.starts_with(old))
                && after.get(i..).is_some_and(|r| r.starts_with(new))
        });
    assert!(
        fits,
        "expected exactly {old:?} -> {new:?}\n--- before\n{before}\n--- after\n{after}"
    );
}

/// Asserts the document's `section.key` now reads as `value`, and the rest of the file as
/// before.
#[track_caller]
fn assert_reads(before: &str, after: &str, section: &str, key: &str, value: Option<Value>) {
    let mut expected = read(before);
    if expected.is_null() {
        expected = json!({});
    }
    let top = expected.as_object_mut().unwrap();
    let slot = top.entry(section).or_insert(json!({}));
    if slot.is_null() {
        *slot = json!({});
    }
    let entries = slot.as_object_mut().unwrap();
    match value {
        Some(v) => entries.insert(key.to_owned(), v),
        None => entries.remove(key),
    };
    let mut actual = read(after);
    if actual[section].is_null() {
        actual[section] = json!({});
    }
    assert_eq!(actual, expected);
}

// ---------------------------------------------------------------------------------------------
// go2rtc

const GO2RTC_DRIVEWAY: &str =
    "  driveway: rtsp://viewer:secret@192.168.1.42:554/stream1  # PoE port 3\n";

fn backyard() -> Value {
    json!([
        "rtsp://viewer:secret@192.168.1.43:554/stream1",
        "ffmpeg:backyard#video=h264"
    ])
}

#[test]
fn go2rtc_add_stream_goes_after_the_last_entry() {
    let before = fixture("go2rtc.yaml");
    let after = upserted(&before, "streams", "backyard", backyard());
    assert_splice(
        &before,
        &after,
        "",
        "  backyard:\n    - rtsp://viewer:secret@192.168.1.43:554/stream1\n    - ffmpeg:backyard#video=h264\n",
    );
    golden("go2rtc.add.yaml", &after);
    assert_reads(&before, &after, "streams", "backyard", Some(backyard()));
}

#[test]
fn go2rtc_update_keeps_the_inline_comment() {
    let before = fixture("go2rtc.yaml");
    let url = json!("rtsp://viewer:secret@192.168.1.52:554/stream2");
    let after = upserted(&before, "streams", "driveway", url.clone());
    assert_splice(
        &before,
        &after,
        GO2RTC_DRIVEWAY,
        "  driveway: rtsp://viewer:secret@192.168.1.52:554/stream2  # PoE port 3\n",
    );
    golden("go2rtc.update.yaml", &after);
    assert_reads(&before, &after, "streams", "driveway", Some(url));
}

#[test]
fn go2rtc_update_from_one_source_to_several_keeps_the_leading_comment() {
    let before = fixture("go2rtc.yaml");
    let sources = json!(["rtsp://10.0.0.41/main", "rtsp://10.0.0.41/sub"]);
    let after = upserted(&before, "streams", "garage", sources.clone());
    assert_splice(
        &before,
        &after,
        "  garage: rtsp://viewer:secret@192.168.1.41:554/stream1\n",
        "  garage:\n    - rtsp://10.0.0.41/main\n    - rtsp://10.0.0.41/sub\n",
    );
    assert!(after.contains("  # camsync\n  garage:\n"));
    assert_reads(&before, &after, "streams", "garage", Some(sources));
}

#[test]
fn go2rtc_remove_takes_the_leading_comment_along() {
    let before = fixture("go2rtc.yaml");
    let after = removed(&before, "streams", "garage");
    assert_splice(
        &before,
        &after,
        "  # camsync\n  garage: rtsp://viewer:secret@192.168.1.41:554/stream1\n",
        "",
    );
    golden("go2rtc.remove.yaml", &after);
    assert_reads(&before, &after, "streams", "garage", None);
}

#[test]
fn go2rtc_remove_a_multi_line_entry() {
    let before = fixture("go2rtc.yaml");
    let after = removed(&before, "streams", "doorbell");
    assert_splice(
        &before,
        &after,
        "  # Doorbell: main stream, plus a transcode for browsers.\n  doorbell:\n    - rtsp://admin:${DOORBELL_PASS}@192.168.1.30:554/cam/realmonitor?channel=1&subtype=0\n    - ffmpeg:doorbell#video=h264#hardware   # Intel QSV\n",
        "",
    );
}

#[test]
fn go2rtc_keys_in_file_order() {
    let d = doc(&fixture("go2rtc.yaml"));
    assert_eq!(
        d.keys("streams"),
        ["doorbell", "garage", "driveway", "test_pattern"]
    );
    assert_eq!(d.keys("api"), ["listen", "origin"]);
    assert!(d.keys("paths").is_empty());
}

#[test]
fn go2rtc_upsert_of_the_same_value_changes_nothing() {
    let before = fixture("go2rtc.yaml");
    let same = json!("rtsp://viewer:secret@192.168.1.42:554/stream1");
    assert_eq!(upserted(&before, "streams", "driveway", same), before);
}

#[test]
fn go2rtc_remove_of_an_absent_key_changes_nothing() {
    let before = fixture("go2rtc.yaml");
    assert_eq!(removed(&before, "streams", "nope"), before);
    assert_eq!(removed(&before, "paths", "nope"), before);
}

#[test]
fn go2rtc_sequence_of_edits() {
    let before = fixture("go2rtc.yaml");
    let mut d = doc(&before);
    d.upsert("streams", "backyard", &backyard()).unwrap();
    d.remove("streams", "garage").unwrap();
    d.upsert(
        "streams",
        "driveway",
        &json!("rtsp://viewer:secret@192.168.1.52:554/stream2"),
    )
    .unwrap();
    golden("go2rtc.sequence.yaml", d.text());
    assert_eq!(
        d.keys("streams"),
        ["doorbell", "driveway", "test_pattern", "backyard"]
    );
}

#[test]
fn go2rtc_batch_of_edits_in_one_apply() {
    let before = fixture("go2rtc.yaml");
    let mut d = doc(&before);
    let (sources, url) = (
        backyard(),
        json!("rtsp://viewer:secret@192.168.1.52:554/stream2"),
    );
    d.apply(
        "streams",
        &[
            Change::Upsert("backyard", &sources),
            Change::Remove("garage"),
            Change::Upsert("driveway", &url),
        ],
    )
    .unwrap();
    assert_eq!(d.text(), fixture("go2rtc.sequence.yaml"));
}

#[test]
fn batch_keeps_the_last_change_of_a_key_and_the_order_of_new_keys() {
    let (a, b, c) = (json!("rtsp://a"), json!("rtsp://b"), json!("rtsp://c"));
    let mut d = doc("streams:\n  old: rtsp://o\nlog: x\n");
    d.apply(
        "streams",
        &[
            Change::Upsert("n2", &a),
            Change::Upsert("n1", &b),
            Change::Remove("old"),
            Change::Upsert("n2", &c),
            Change::Remove("nope"),
        ],
    )
    .unwrap();
    assert_eq!(
        d.text(),
        "streams:\n  n2: rtsp://c\n  n1: rtsp://b\nlog: x\n"
    );
}

#[test]
fn batch_on_absent_null_and_flow_sections() {
    let (a, b) = (json!("rtsp://a"), json!(["rtsp://b"]));
    let both = [Change::Upsert("a", &a), Change::Upsert("b", &b)];
    for (before, after) in [
        (
            "log: x\n",
            "log: x\nstreams:\n  a: rtsp://a\n  b:\n    - rtsp://b\n",
        ),
        (
            "streams: ~\n",
            "streams:\n  a: rtsp://a\n  b:\n    - rtsp://b\n",
        ),
        (
            "streams: {z: 1}\n",
            "streams:\n  z: 1\n  a: rtsp://a\n  b:\n    - rtsp://b\n",
        ),
        (
            "streams:\n  a: x",
            "streams:\n  a: rtsp://a\n  b:\n    - rtsp://b",
        ),
    ] {
        let mut d = doc(before);
        d.apply("streams", &both).unwrap();
        assert_eq!(d.text(), after, "{before:?}");
    }
}

#[test]
fn batch_is_all_or_nothing() {
    let v = json!("rtsp://x");
    let mut d = doc(MERGED);
    let err = d
        .apply(
            "streams",
            &[Change::Upsert("cam9", &v), Change::Remove("cam1")],
        )
        .unwrap_err();
    assert!(matches!(err, EditError::MergedKey { .. }), "{err:?}");
    assert_eq!(d.text(), MERGED);
}

#[test]
fn go2rtc_crlf_file_stays_crlf() {
    let before = crlf(&fixture("go2rtc.yaml"));
    let added = upserted(&before, "streams", "backyard", backyard());
    assert_eq!(added, crlf(&fixture("go2rtc.add.yaml")));
    let url = json!("rtsp://viewer:secret@192.168.1.52:554/stream2");
    let updated = upserted(&before, "streams", "driveway", url);
    assert_eq!(updated, crlf(&fixture("go2rtc.update.yaml")));
    let gone = removed(&before, "streams", "garage");
    assert_eq!(gone, crlf(&fixture("go2rtc.remove.yaml")));
}

#[test]
fn go2rtc_file_without_streams_gets_the_section_appended() {
    let full = fixture("go2rtc.yaml");
    let start = full.find("streams:\n").unwrap();
    let end = full.find("# Transcoding.").unwrap();
    let before = format!("{}{}", &full[..start], &full[end..]);
    let after = upserted(&before, "streams", "garage", json!("rtsp://10.0.0.41/main"));
    assert_eq!(
        after,
        format!("{before}streams:\n  garage: rtsp://10.0.0.41/main\n")
    );
}

// ---------------------------------------------------------------------------------------------
// MediaMTX

fn side_gate() -> Value {
    json!({
        "record": false,
        "rtspTransport": "tcp",
        "source": "rtsp://admin:pw@10.1.0.13:554/h264Preview_01_main",
        "sourceOnDemand": true,
    })
}

#[test]
fn mediamtx_add_path_after_all_others() {
    let before = fixture("mediamtx.yml");
    let after = upserted(&before, "paths", "side_gate", side_gate());
    assert_splice(
        &before,
        &after,
        "",
        "  side_gate:\n    record: false\n    rtspTransport: tcp\n    source: rtsp://admin:pw@10.1.0.13:554/h264Preview_01_main\n    sourceOnDemand: true\n",
    );
    assert!(after.ends_with("  all_others:\n  side_gate:\n    record: false\n    rtspTransport: tcp\n    source: rtsp://admin:pw@10.1.0.13:554/h264Preview_01_main\n    sourceOnDemand: true\n"));
    golden("mediamtx.add.yml", &after);
    assert_reads(&before, &after, "paths", "side_gate", Some(side_gate()));
}

#[test]
fn mediamtx_update_path_keeps_its_leading_comment() {
    let before = fixture("mediamtx.yml");
    let value = json!({
        "source": "rtsp://admin:pw@10.1.0.11:554/h264Preview_01_sub",
        "sourceOnDemand": false,
    });
    let after = upserted(&before, "paths", "front_door", value.clone());
    assert_splice(
        &before,
        &after,
        "    source: rtsp://admin:pw@10.1.0.11:554/h264Preview_01_main\n    sourceOnDemand: yes\n    rtspTransport: tcp\n",
        "    source: rtsp://admin:pw@10.1.0.11:554/h264Preview_01_sub\n    sourceOnDemand: false\n",
    );
    golden("mediamtx.update.yml", &after);
    assert_reads(&before, &after, "paths", "front_door", Some(value));
}

#[test]
fn mediamtx_remove_path_and_its_comment() {
    let before = fixture("mediamtx.yml");
    let after = removed(&before, "paths", "front_door");
    assert_splice(
        &before,
        &after,
        "  # Front door, written by camsync.\n  front_door:\n    source: rtsp://admin:pw@10.1.0.11:554/h264Preview_01_main\n    sourceOnDemand: yes\n    rtspTransport: tcp\n",
        "",
    );
    golden("mediamtx.remove.yml", &after);
    assert_reads(&before, &after, "paths", "front_door", None);
}

#[test]
fn mediamtx_remove_path_with_inline_comment_inside() {
    let before = fixture("mediamtx.yml");
    let after = removed(&before, "paths", "back_yard");
    assert_splice(
        &before,
        &after,
        "  back_yard:\n    source: rtsp://admin:pw@10.1.0.12:554/h264Preview_01_main\n    record: yes   # keep a week of footage\n    recordDeleteAfter: 7d\n",
        "",
    );
}

#[test]
fn mediamtx_keys_and_quoted_regex_path() {
    let d = doc(&fixture("mediamtx.yml"));
    assert_eq!(
        d.keys("paths"),
        ["front_door", "~^shed_(.+)$", "back_yard", "all_others"]
    );
    assert_eq!(d.keys("pathDefaults").len(), 11);
}

#[test]
fn mediamtx_value_reads_as_yaml_1_1_booleans_do() {
    // `sourceOnDemand: yes` in the file is the boolean true: upserting `true` is a no-op.
    let before = fixture("mediamtx.yml");
    let value = json!({
        "rtspTransport": "tcp",
        "source": "rtsp://admin:pw@10.1.0.11:554/h264Preview_01_main",
        "sourceOnDemand": true,
    });
    assert_eq!(upserted(&before, "paths", "front_door", value), before);
}

#[test]
fn mediamtx_crlf() {
    let before = crlf(&fixture("mediamtx.yml"));
    let after = upserted(&before, "paths", "side_gate", side_gate());
    assert_eq!(after, crlf(&fixture("mediamtx.add.yml")));
    let after = removed(&before, "paths", "front_door");
    assert_eq!(after, crlf(&fixture("mediamtx.remove.yml")));
}

// ---------------------------------------------------------------------------------------------
// Comments everywhere

#[test]
fn comments_everywhere() {
    let before = fixture("comments.yaml");
    let d = doc(&before);
    assert_eq!(d.keys("streams"), ["cam_a", "cam_b"]);

    // A new entry goes after the last entry's value, including the deeper comment that ends
    // it, and before the comments that trail the section.
    let after = upserted(&before, "streams", "cam_c", json!("rtsp://c"));
    assert_splice(&before, &after, "", "  cam_c: rtsp://c\n");
    assert!(after.contains("part of cam_b\n  cam_c: rtsp://c\n  # trailing at entry indent"));
    golden("comments.add.yaml", &after);

    // Replacing keeps the two-line leading comment and the inline comment.
    let after = upserted(&before, "streams", "cam_a", json!("rtsp://a2"));
    assert_splice(
        &before,
        &after,
        "  cam_a: rtsp://a   # inline a\n",
        "  cam_a: rtsp://a2   # inline a\n",
    );

    // Removing takes the leading comment; nothing else.
    let after = removed(&before, "streams", "cam_a");
    assert_splice(
        &before,
        &after,
        "  # leading of cam_a\n  # (two lines)\n  cam_a: rtsp://a   # inline a\n",
        "",
    );

    // A multi-line value goes with the comments inside it and the deeper one after it.
    let after = removed(&before, "streams", "cam_b");
    assert_splice(
        &before,
        &after,
        "  cam_b:\n    # comment inside the value\n    - rtsp://b1\n    # between items\n    - rtsp://b2\n    # trailing deeper comment, part of cam_b\n",
        "",
    );
    golden("comments.remove.yaml", &after);
}

#[test]
fn comment_at_column_zero_directly_above_is_a_leading_comment() {
    let before = "streams:\n  a: x\n# about b\n  b: y\n  c: z\n";
    let after = removed(before, "streams", "b");
    assert_eq!(after, "streams:\n  a: x\n  c: z\n");
}

#[test]
fn comment_separated_by_a_blank_line_stays() {
    let before = "streams:\n  a: x\n  # users below\n\n  b: y\n";
    assert_eq!(
        removed(before, "streams", "b"),
        "streams:\n  a: x\n  # users below\n\n"
    );
}

#[test]
fn inline_comment_of_a_replaced_scalar_moves_to_the_key_line_of_a_list() {
    let before = "streams:\n  cam: rtsp://a  # main\nlog: {}\n";
    let after = upserted(before, "streams", "cam", json!(["rtsp://a", "rtsp://b"]));
    assert_eq!(
        after,
        "streams:\n  cam:  # main\n    - rtsp://a\n    - rtsp://b\nlog: {}\n"
    );
}

#[test]
fn header_comment_and_comment_inside_quotes() {
    let before = "streams:  # owned in part by camsync\n  cam: \"rtsp://a # not a comment\"\n";
    let after = upserted(before, "streams", "cam", json!("rtsp://b"));
    assert_eq!(
        after,
        "streams:  # owned in part by camsync\n  cam: rtsp://b\n"
    );
}

// ---------------------------------------------------------------------------------------------
// Quoted keys and quoting of what camsync writes

const QUOTED: &str = "streams:\n  'cam 1': rtsp://a\n  \"cam-2\": rtsp://b   # two\n  \"yes\": rtsp://c\n  'it''s': rtsp://d\n  \"123\": rtsp://e\n";

#[test]
fn quoted_keys_are_recognised() {
    assert_eq!(
        doc(QUOTED).keys("streams"),
        ["cam 1", "cam-2", "yes", "it's", "123"]
    );
}

#[test]
fn quoted_key_keeps_its_quotes_when_replaced() {
    let after = upserted(QUOTED, "streams", "cam-2", json!("rtsp://new"));
    assert_splice(
        QUOTED,
        &after,
        "  \"cam-2\": rtsp://b   # two\n",
        "  \"cam-2\": rtsp://new   # two\n",
    );
    let after = upserted(QUOTED, "streams", "it's", json!("rtsp://new"));
    assert_splice(
        QUOTED,
        &after,
        "  'it''s': rtsp://d\n",
        "  'it''s': rtsp://new\n",
    );
}

#[test]
fn quoted_key_removed() {
    let after = removed(QUOTED, "streams", "yes");
    assert_splice(QUOTED, &after, "  \"yes\": rtsp://c\n", "");
    let after = removed(QUOTED, "streams", "123");
    assert_splice(QUOTED, &after, "  \"123\": rtsp://e\n", "");
}

#[test]
fn new_keys_are_quoted_when_yaml_would_misread_them() {
    for (key, written) in [
        ("no", "\"no\""),
        ("on", "\"on\""),
        ("null", "\"null\""),
        ("1080", "\"1080\""),
        ("1.5", "\"1.5\""),
        ("<<", "\"<<\""),
        ("cam.1", "cam.1"),
        ("site/cam_2", "site/cam_2"),
        ("-cam", "\"-cam\""),
        ("cam-3", "cam-3"),
    ] {
        let after = upserted("streams:\n  a: x\n", "streams", key, json!("rtsp://z"));
        assert_eq!(after, format!("streams:\n  a: x\n  {written}: rtsp://z\n"));
        assert_eq!(read(&after)["streams"][key], "rtsp://z", "{key}");
    }
}

#[test]
fn values_are_quoted_when_yaml_would_misread_them() {
    let cases = [
        ("yes", "\"yes\""),
        ("Off", "\"Off\""),
        ("~", "\"~\""),
        ("", "\"\""),
        ("123", "\"123\""),
        ("0x10", "\"0x10\""),
        ("*alias", "\"*alias\""),
        ("&anchor", "\"&anchor\""),
        ("!tag", "\"!tag\""),
        ("%x", "\"%x\""),
        ("@x", "\"@x\""),
        ("`x`", "\"`x`\""),
        ("#x", "\"#x\""),
        ("a: b", "\"a: b\""),
        ("a #b", "\"a #b\""),
        (" lead", "\" lead\""),
        ("trail ", "\"trail \""),
        ("{x}", "\"{x}\""),
        ("[x]", "\"[x]\""),
        ("- x", "\"- x\""),
        ("two\nlines", "\"two\\nlines\""),
        ("say \"hi\"", "say \"hi\""),
        ("\"hi\" she said", "\"\\\"hi\\\" she said\""),
        ("back\\slash", "back\\slash"),
        (
            "exec:ffmpeg -i \"x\" {output}",
            "exec:ffmpeg -i \"x\" {output}",
        ),
        (
            "ffmpeg:cam#video=h264#audio=opus",
            "ffmpeg:cam#video=h264#audio=opus",
        ),
        ("rtsp://u:p@h/x?a=1&b=2", "rtsp://u:p@h/x?a=1&b=2"),
        ("10s", "10s"),
        ("café", "café"),
    ];
    for (value, written) in cases {
        let after = upserted("streams:\n  a: x\n", "streams", "cam", json!(value));
        assert_eq!(
            after,
            format!("streams:\n  a: x\n  cam: {written}\n"),
            "{value:?}"
        );
        assert_eq!(read(&after)["streams"]["cam"], value, "{value:?}");
    }
}

#[test]
fn mapping_values_with_lists_numbers_and_booleans() {
    let value = json!({
        "maxReaders": 4,
        "record": true,
        "runOnReady": ["curl", "-X", "POST", "yes"],
        "source": "publisher",
        "extra": {"nested": [1, "2"], "empty": []},
    });
    let after = upserted("paths:\n  all_others:\n", "paths", "cam", value.clone());
    assert_eq!(
        after,
        "\
paths:
  all_others:
  cam:
    extra:
      empty: []
      nested:
        - 1
        - \"2\"
    maxReaders: 4
    record: true
    runOnReady:
      - curl
      - \"-X\"
      - POST
      - \"yes\"
    source: publisher
"
    );
    assert_eq!(read(&after)["paths"]["cam"], value);
}

// ---------------------------------------------------------------------------------------------
// Interleaved user and camsync entries

const INTERLEAVED: &str = "\
streams:
  user_one: rtsp://10.0.0.1/main
  cs_a: rtsp://10.0.0.2/main
  user_two:
    - rtsp://10.0.0.3/main
    - rtsp://10.0.0.3/sub
  cs_b: rtsp://10.0.0.4/main
  user_three: rtsp://10.0.0.5/main
";

#[test]
fn interleaved_user_entries_are_left_alone() {
    let mut d = doc(INTERLEAVED);
    d.remove("streams", "cs_a").unwrap();
    d.upsert(
        "streams",
        "cs_b",
        &json!(["rtsp://10.0.0.4/main", "rtsp://10.0.0.4/sub"]),
    )
    .unwrap();
    d.upsert("streams", "cs_c", &json!("rtsp://10.0.0.6/main"))
        .unwrap();
    assert_eq!(
        d.text(),
        "\
streams:
  user_one: rtsp://10.0.0.1/main
  user_two:
    - rtsp://10.0.0.3/main
    - rtsp://10.0.0.3/sub
  cs_b:
    - rtsp://10.0.0.4/main
    - rtsp://10.0.0.4/sub
  user_three: rtsp://10.0.0.5/main
  cs_c: rtsp://10.0.0.6/main
"
    );
}

// ---------------------------------------------------------------------------------------------
// Anchors, aliases and merge keys

#[test]
fn anchors_and_aliases_survive_edits() {
    let before = fixture("anchors.yaml");
    let mut d = doc(&before);
    d.upsert("streams", "owned", &json!("rtsp://10.0.0.33/main"))
        .unwrap();
    d.upsert("streams", "alias_user", &json!("rtsp://10.0.0.34/main"))
        .unwrap();
    d.remove("streams", "uses_merge").unwrap();
    d.upsert("streams", "new_cam", &json!("rtsp://10.0.0.35/main"))
        .unwrap();
    golden("anchors.edited.yaml", d.text());
    let v = read(d.text());
    assert_eq!(v["mirror"], "rtsp://10.0.0.1/main");
    assert_eq!(v["defaults"], "rtsp://10.0.0.9/main");
    assert_eq!(v["x-common"]["sourceOnDemand"], true);
    assert_eq!(v["preload"]["shared_too"], "rtsp://10.0.0.1/main");
}

#[test]
fn an_entry_whose_anchor_is_used_elsewhere_is_refused() {
    let before = fixture("anchors.yaml");
    let mut d = doc(&before);
    let err = d
        .upsert("streams", "shared", &json!("rtsp://x"))
        .unwrap_err();
    assert!(
        matches!(&err, EditError::AnchorInUse { key, line: 8, used_at: 16, .. } if key == "shared"),
        "{err:?}"
    );
    let err = d.remove("streams", "shared").unwrap_err();
    assert!(matches!(err, EditError::AnchorInUse { .. }), "{err:?}");
    assert_eq!(d.text(), before, "a refused edit leaves the text alone");
}

#[test]
fn an_anchor_used_only_inside_its_entry_is_fine() {
    let before = "streams:\n  cam:\n    - &u rtsp://a\n    - *u\n  other: x\n";
    let after = removed(before, "streams", "cam");
    assert_eq!(after, "streams:\n  other: x\n");
}

const MERGED: &str = "\
base: &base
  cam1: rtsp://a
  cam2: rtsp://b
streams:
  <<: *base
  cam2: rtsp://override
  cam3: rtsp://c
";

#[test]
fn merge_keys_in_the_section() {
    let d = doc(MERGED);
    assert_eq!(d.keys("streams"), ["cam2", "cam3"]);
    let mut d = doc(MERGED);
    for err in [
        d.upsert("streams", "cam1", &json!("rtsp://x")).unwrap_err(),
        d.remove("streams", "cam1").unwrap_err(),
        d.remove("streams", "cam2").unwrap_err(),
    ] {
        assert!(
            matches!(err, EditError::MergedKey { line: 5, .. }),
            "{err:?}"
        );
    }
    d.upsert("streams", "cam2", &json!("rtsp://override2"))
        .unwrap();
    d.remove("streams", "cam3").unwrap();
    d.upsert("streams", "cam4", &json!("rtsp://d")).unwrap();
    assert_eq!(
        d.text(),
        "base: &base\n  cam1: rtsp://a\n  cam2: rtsp://b\nstreams:\n  <<: *base\n  cam2: rtsp://override2\n  cam4: rtsp://d\n"
    );
    let v = read(d.text());
    assert_eq!(v["streams"]["cam1"], "rtsp://a");
}

#[test]
fn an_aliased_or_alias_section_is_refused() {
    for text in [
        "streams: &s\n  a: x\ncopy: *s\n",
        "base: &s\n  a: x\nstreams: *s\n",
        "streams: &s\n  a: x\ncopy:\n  <<: *s\n",
    ] {
        let mut d = doc(text);
        let err = d.upsert("streams", "b", &json!("y")).unwrap_err();
        assert!(
            matches!(err, EditError::SharedSection { .. }),
            "{text}: {err:?}"
        );
        assert_eq!(d.text(), text);
    }
    // An anchor nobody uses is kept and does not get in the way.
    let after = upserted("streams: &s\n  a: x\n", "streams", "b", json!("v"));
    assert_eq!(after, "streams: &s\n  a: x\n  b: v\n");
}

#[test]
fn an_alias_key_is_refused() {
    let text = "k: &k cam\nstreams:\n  *k : rtsp://a\n  b: c\n";
    let mut d = doc(text);
    assert_eq!(d.keys("streams"), ["cam", "b"]);
    let err = d.upsert("streams", "cam", &json!("x")).unwrap_err();
    assert!(
        matches!(err, EditError::AliasKey { line: 3, .. }),
        "{err:?}"
    );
    let err = d.remove("streams", "cam").unwrap_err();
    assert!(matches!(err, EditError::AliasKey { .. }), "{err:?}");
    d.upsert("streams", "b", &json!("d")).unwrap();
    assert_eq!(d.text(), "k: &k cam\nstreams:\n  *k : rtsp://a\n  b: d\n");
}

// ---------------------------------------------------------------------------------------------
// Flow style, empty and null sections, odd files

#[test]
fn flow_style_empty_section_becomes_block() {
    assert_eq!(
        upserted("streams: {}\n", "streams", "cam", json!("rtsp://a")),
        "streams:\n  cam: rtsp://a\n"
    );
    assert_eq!(
        upserted(
            "api:\n  listen: \":1984\"\nstreams: {}  # filled by camsync\nlog:\n  level: info\n",
            "streams",
            "cam",
            json!("rtsp://a")
        ),
        "api:\n  listen: \":1984\"\nstreams:  # filled by camsync\n  cam: rtsp://a\nlog:\n  level: info\n"
    );
}

#[test]
fn flow_style_section_keeps_its_entries() {
    let before = "paths: {user: {source: publisher, maxReaders: 2}, 'b c': rtsp://x, m: [1, \"2\"]}  # hi\nlog: x\n";
    let after = upserted(before, "paths", "cam", json!("rtsp://y"));
    assert_eq!(
        after,
        "paths:  # hi\n  user:\n    maxReaders: 2\n    source: publisher\n  b c: rtsp://x\n  m:\n    - 1\n    - \"2\"\n  cam: rtsp://y\nlog: x\n"
    );
    assert_reads(before, &after, "paths", "cam", Some(json!("rtsp://y")));
}

#[test]
fn multi_line_flow_section() {
    let before = "streams: {\n  a: rtsp://a,\n  b: rtsp://b\n}\nlog: x\n";
    let after = upserted(before, "streams", "a", json!("rtsp://a2"));
    assert_eq!(after, "streams:\n  a: rtsp://a2\n  b: rtsp://b\nlog: x\n");
    let with_comment = "streams: {\n  a: rtsp://a,  # first\n  b: rtsp://b\n}\n";
    let err = doc(with_comment)
        .upsert("streams", "c", &json!("x"))
        .unwrap_err();
    assert!(matches!(err, EditError::Unsupported { .. }), "{err:?}");
}

#[test]
fn remove_from_flow_section() {
    assert_eq!(
        removed("streams: {a: x, b: w}\n", "streams", "a"),
        "streams:\n  b: w\n"
    );
    assert_eq!(removed("streams: {a: x}\n", "streams", "a"), "streams:\n");
    // Nothing to remove: the flow mapping stays as it is.
    assert_eq!(
        removed("streams: {a: x}\n", "streams", "z"),
        "streams: {a: x}\n"
    );
}

#[test]
fn empty_file() {
    assert_eq!(
        upserted("", "streams", "cam", json!("rtsp://a")),
        "streams:\n  cam: rtsp://a\n"
    );
    assert!(doc("").keys("streams").is_empty());
    assert_eq!(removed("", "streams", "cam"), "");
}

#[test]
fn file_with_only_comments() {
    assert_eq!(
        upserted("# nothing yet\n\n", "streams", "cam", json!("rtsp://a")),
        "# nothing yet\n\nstreams:\n  cam: rtsp://a\n"
    );
    assert_eq!(
        upserted("# nothing yet", "streams", "cam", json!("rtsp://a")),
        "# nothing yet\nstreams:\n  cam: rtsp://a"
    );
    assert_eq!(
        upserted("# nothing yet\r\n", "streams", "cam", json!("rtsp://a")),
        "# nothing yet\r\nstreams:\r\n  cam: rtsp://a\r\n"
    );
}

#[test]
fn null_section() {
    assert_eq!(
        upserted("streams:\nlog: x\n", "streams", "cam", json!("rtsp://a")),
        "streams:\n  cam: rtsp://a\nlog: x\n"
    );
    assert_eq!(
        upserted(
            "streams: ~  # none yet\nlog: x\n",
            "streams",
            "cam",
            json!("rtsp://a")
        ),
        "streams:  # none yet\n  cam: rtsp://a\nlog: x\n"
    );
    assert_eq!(
        upserted("streams: null\n", "streams", "cam", json!("rtsp://a")),
        "streams:\n  cam: rtsp://a\n"
    );
    // Commented-out examples under an empty section stay below the new entry.
    assert_eq!(
        upserted(
            "paths:\n  # example:\n  # cam: rtsp://x\n\nlog: x\n",
            "paths",
            "cam",
            json!("rtsp://a")
        ),
        "paths:\n  cam: rtsp://a\n  # example:\n  # cam: rtsp://x\n\nlog: x\n"
    );
}

#[test]
fn removing_the_last_entry_leaves_an_empty_section() {
    assert_eq!(
        removed("streams:\n  cam: rtsp://a\nlog: x\n", "streams", "cam"),
        "streams:\nlog: x\n"
    );
}

#[test]
fn indentation_follows_the_file() {
    assert_eq!(
        upserted("streams:\n    a: x\n", "streams", "b", json!(["v", "w"])),
        "streams:\n    a: x\n    b:\n        - v\n        - w\n"
    );
    // An empty section takes the indentation of the other sections.
    assert_eq!(
        upserted(
            "api:\n    listen: \":1984\"\nstreams:\n",
            "streams",
            "b",
            json!(["v"])
        ),
        "api:\n    listen: \":1984\"\nstreams:\n    b:\n        - v\n"
    );
}

#[test]
fn missing_final_newline_stays_missing() {
    let before = "streams:\n  a: x";
    let added = upserted(before, "streams", "b", json!("v"));
    assert_eq!(added, "streams:\n  a: x\n  b: v");
    assert_eq!(removed(&added, "streams", "b"), before);
    assert_eq!(
        upserted(before, "streams", "a", json!("z")),
        "streams:\n  a: z"
    );
    assert_eq!(removed(before, "streams", "a"), "streams:");
}

#[test]
fn document_markers_and_byte_order_mark() {
    assert_eq!(
        upserted("---\nstreams:\n  a: x\n...\n", "streams", "b", json!("v")),
        "---\nstreams:\n  a: x\n  b: v\n...\n"
    );
    assert_eq!(
        upserted("\u{feff}streams:\n  a: x\n", "streams", "b", json!("v")),
        "\u{feff}streams:\n  a: x\n  b: v\n"
    );
}

#[test]
fn block_scalars_and_multi_line_values_are_whole_entries() {
    let before = "streams:\n  a: |\n    exec:ffmpeg\n    # not a comment\n\n  b: >-\n    folded\n    text\n  c: rtsp://c\n";
    assert_eq!(
        removed(before, "streams", "a"),
        "streams:\n\n  b: >-\n    folded\n    text\n  c: rtsp://c\n"
    );
    assert_eq!(
        upserted(before, "streams", "b", json!("rtsp://b")),
        "streams:\n  a: |\n    exec:ffmpeg\n    # not a comment\n\n  b: rtsp://b\n  c: rtsp://c\n"
    );
}

#[test]
fn other_sections_are_not_confused_with_the_section() {
    // `streams:` nested under `log:` is not the top-level section.
    let before = "log:\n  streams: warn\nstreams:\n  a: x\n";
    assert_eq!(
        upserted(before, "streams", "b", json!("v")),
        "log:\n  streams: warn\nstreams:\n  a: x\n  b: v\n"
    );
}

// ---------------------------------------------------------------------------------------------
// Errors

#[test]
fn files_that_are_not_editable() {
    let not_yaml = [
        "streams: [\n",
        "a: 1\na: 2\n",
        "a: 1\n---\nb: 2\n",
        "a: \"x\n",
    ];
    for text in not_yaml {
        let err = Document::parse(text).unwrap_err();
        assert!(
            matches!(err, EditError::NotYaml { .. }),
            "{text:?}: {err:?}"
        );
    }
    let err = Document::parse("- a\n- b\n").unwrap_err();
    assert!(
        matches!(err, EditError::TopLevelNotMapping { line: 1 }),
        "{err:?}"
    );
    let err = Document::parse("just text\n").unwrap_err();
    assert!(
        matches!(err, EditError::TopLevelNotMapping { .. }),
        "{err:?}"
    );
    let err = Document::parse("a: 1\rb: 2\n").unwrap_err();
    assert!(
        matches!(err, EditError::UnsupportedFile { line: 1, .. }),
        "{err:?}"
    );
}

#[test]
fn sections_that_are_not_mappings() {
    for text in ["streams: [a]\n", "streams: x\n", "streams:\n  - a\n"] {
        let mut d = doc(text);
        let err = d.upsert("streams", "cam", &json!("x")).unwrap_err();
        assert!(
            matches!(err, EditError::SectionNotMapping { line: 1, .. }),
            "{err:?}"
        );
        let err = d.remove("streams", "cam").unwrap_err();
        assert!(
            matches!(err, EditError::SectionNotMapping { .. }),
            "{err:?}"
        );
        assert!(d.keys("streams").is_empty());
    }
    let err = doc("{streams: {}}\n")
        .upsert("streams", "cam", &json!("x"))
        .unwrap_err();
    assert!(matches!(err, EditError::Unsupported { .. }), "{err:?}");
}

#[test]
fn error_messages_do_not_quote_values() {
    let mut d = doc("streams: &s\n  cam: rtsp://admin:hunter2@h/x\ncopy: *s\n");
    let err = d.upsert("streams", "cam", &json!("x")).unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let err = Document::parse("streams:\n  cam: \"rtsp://admin:hunter2@h\n").unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Property tests

mod properties {
    use super::{Change, Document, Value, json, read};
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// Keys camsync owns in the generated files. Some need quoting.
    const OWNED: [&str; 6] = ["cam_a", "cam-b", "site/cam.c", "yes", "123", "cam_d"];

    /// How an owned key is written in a template (the generator's own spelling, not the
    /// editor's).
    const OWNED_WRITTEN: [&str; 6] = ["cam_a", "cam-b", "site/cam.c", "\"yes\"", "'123'", "cam_d"];

    /// Hand-written entries of the operator, as lines at indent 2.
    const USER: [&[&str]; 7] = [
        &[
            "doorbell:",
            "  - rtsp://10.0.0.2/main",
            "  - ffmpeg:doorbell#video=h264  # transcode",
        ],
        &["kitchen: rtsp://10.0.0.3/live  # inline"],
        &["'quoted user': \"rtsp://10.0.0.4/x\""],
        &[
            "lab:",
            "  source: rtsp://10.0.0.5/x",
            "  # disabled:",
            "  # record: yes",
            "  sourceOnDemand: yes",
        ],
        &["shared: &shared rtsp://10.0.0.6/x"],
        &[
            "user_list:",
            "  - rtsp://10.0.0.7/a",
            "  # - rtsp://10.0.0.7/disabled",
        ],
        &[
            "script: |",
            "  exec:ffmpeg -i x",
            "",
            "  # not a comment",
            "  -f rtsp {output}",
        ],
    ];

    const STRINGS: [&str; 12] = [
        "rtsp://admin:pw@10.0.0.9:554/stream1",
        "ffmpeg:cam#video=h264#hardware",
        "yes",
        "123",
        "a: b",
        "x #y",
        "*not_alias",
        " padded ",
        "exec:ffmpeg -i \"in\" {output}",
        "",
        "línea\nnueva",
        "~",
    ];

    #[derive(Debug, Clone)]
    enum Op {
        Upsert(usize, Value),
        Remove(usize),
    }

    #[derive(Debug, Clone, Copy)]
    enum Shape {
        Block,
        Null,
        Absent,
    }

    /// One line of a generated file and whether it belongs to a camsync-owned entry.
    type Line = (String, bool);

    #[derive(Debug, Clone)]
    struct Template {
        section: &'static str,
        eol: &'static str,
        indent: usize,
        shape: Shape,
        section_last: bool,
        /// Entries of the section, each with what is written before it.
        entries: Vec<(Item, Sep)>,
    }

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Item {
        /// `OWNED[key]` with the value `STRINGS[value]`.
        Owned { key: usize, value: usize },
        /// `USER[i]`.
        User(usize),
    }

    /// What separates an entry from the previous line.
    #[derive(Debug, Clone, Copy)]
    enum Sep {
        Nothing,
        Blank,
        /// A comment of the operator's, then a blank line.
        UserComment,
        /// A comment directly above: it belongs to the entry.
        Leading,
        /// The same, written at column 0.
        ColumnZero,
    }

    fn value() -> impl Strategy<Value = Value> {
        let s = || (0..STRINGS.len()).prop_map(|i| json!(STRINGS[i]));
        prop_oneof![
            s(),
            proptest::collection::vec(s(), 0..3).prop_map(Value::Array),
            (
                s(),
                any::<bool>(),
                0u32..5,
                proptest::collection::vec(s(), 0..2)
            )
                .prop_map(|(source, on_demand, readers, run)| json!({
                    "source": source,
                    "sourceOnDemand": on_demand,
                    "maxReaders": readers,
                    "runOnReady": run,
                })),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            2 => (0..OWNED.len(), value()).prop_map(|(k, v)| Op::Upsert(k, v)),
            1 => (0..OWNED.len()).prop_map(Op::Remove),
        ]
    }

    fn template() -> impl Strategy<Value = Template> {
        let entry = prop_oneof![
            (0..OWNED.len(), 0..STRINGS.len()).prop_map(|(key, value)| Item::Owned { key, value }),
            (0..USER.len()).prop_map(Item::User),
        ];
        let sep = prop_oneof![
            Just(Sep::Nothing),
            Just(Sep::Blank),
            Just(Sep::UserComment),
            Just(Sep::Leading),
            Just(Sep::ColumnZero),
        ];
        (
            prop_oneof![Just("streams"), Just("paths")],
            prop_oneof![Just("\n"), Just("\r\n")],
            prop_oneof![Just(2usize), Just(4)],
            prop_oneof![Just(Shape::Block), Just(Shape::Null), Just(Shape::Absent)],
            any::<bool>(),
            proptest::collection::vec((entry, sep), 1..7),
        )
            .prop_map(|(section, eol, indent, shape, section_last, mut entries)| {
                // Each key at most once.
                let mut seen = Vec::new();
                entries.retain(|(e, _)| {
                    let id = match e {
                        Item::Owned { key, .. } => Item::Owned {
                            key: *key,
                            value: 0,
                        },
                        Item::User(u) => Item::User(*u),
                    };
                    let fresh = !seen.contains(&id);
                    seen.push(id);
                    fresh
                });
                Template {
                    section,
                    eol,
                    indent,
                    shape,
                    section_last,
                    entries,
                }
            })
    }

    impl Template {
        fn lines(&self) -> Vec<Line> {
            let user = |s: &str| (s.to_owned(), false);
            let mut out = vec![
                user("# Generated test file: comments, other sections, anchors."),
                user(""),
                user("api:"),
                user(&format!("{}listen: \":1984\"   # api", self.pad(1))),
                user(""),
                user("defaults: &defaults"),
                user(&format!("{}source: rtsp://shared", self.pad(1))),
                user(""),
            ];
            if !self.section_last {
                self.push_section(&mut out);
            }
            out.extend([
                user("# Logging."),
                user("log:"),
                user(&format!("{}level: info", self.pad(1))),
                user(&format!("{}copy: *defaults", self.pad(1))),
            ]);
            if self.section_last {
                out.push(user(""));
                self.push_section(&mut out);
                out.push(user("# end of file"));
            }
            out
        }

        fn pad(&self, depth: usize) -> String {
            " ".repeat(self.indent * depth)
        }

        fn push_section(&self, out: &mut Vec<Line>) {
            let user = |s: String| (s, false);
            match self.shape {
                Shape::Absent => return,
                Shape::Null => {
                    out.push(user(format!("{}:", self.section)));
                    out.push(user(format!("{}# nothing here yet", self.pad(1))));
                }
                Shape::Block => {
                    out.push(user(format!("{}:   # mixed ownership", self.section)));
                    for &(entry, sep) in &self.entries {
                        self.push_entry(out, entry, sep);
                    }
                    out.push(user(format!(
                        "{}# trailing comment of the section",
                        self.pad(1)
                    )));
                }
            }
            out.push(user(String::new()));
        }

        fn push_entry(&self, out: &mut Vec<Line>, entry: Item, sep: Sep) {
            let pad = self.pad(1);
            let owned = matches!(entry, Item::Owned { .. });
            match sep {
                Sep::Nothing => {}
                Sep::Blank => out.push((String::new(), false)),
                Sep::UserComment => {
                    out.push((format!("{pad}# a user comment"), false));
                    out.push((String::new(), false));
                }
                Sep::Leading => out.push((format!("{pad}# leading comment"), owned)),
                Sep::ColumnZero => out.push(("# leading at column 0".to_owned(), owned)),
            }
            match entry {
                Item::Owned { key, value } if value % 3 == 0 => {
                    let value = super::json_quoted(STRINGS[value]);
                    out.push((format!("{pad}{}:", OWNED_WRITTEN[key]), true));
                    out.push((format!("{pad}{pad}- {value}"), true));
                }
                Item::Owned { key, value } => {
                    let value = super::json_quoted(STRINGS[value]);
                    out.push((format!("{pad}{}: {value}", OWNED_WRITTEN[key]), true));
                }
                Item::User(user) => {
                    for line in USER[user] {
                        let line = line.replace("  ", &pad);
                        out.push((format!("{pad}{line}"), false));
                    }
                }
            }
        }

        fn text(&self) -> String {
            self.lines()
                .iter()
                .map(|(l, _)| format!("{l}{}", self.eol))
                .collect()
        }
    }

    /// The text with every camsync-owned key removed (by the editor).
    fn strip_owned(text: &str, section: &str) -> String {
        let mut d = Document::parse(text).unwrap();
        for key in OWNED {
            d.remove(section, key).unwrap();
        }
        d.text().to_owned()
    }

    /// `doc` without `section` if that is null or empty (absent, `streams:` and `streams: {}`
    /// all mean no entries).
    fn without_empty(mut doc: Value, section: &str) -> Value {
        if let Some(top) = doc.as_object_mut()
            && top
                .get(section)
                .is_some_and(|v| v.is_null() || v == &json!({}))
        {
            top.remove(section);
        }
        doc
    }

    /// Whether `needles` appear in `haystack` in order.
    fn is_subsequence(needles: &[String], haystack: &[&str]) -> bool {
        let mut rest = haystack.iter();
        needles.iter().all(|n| rest.any(|h| h == n))
    }

    proptest! {
        #![proptest_config(crate::test_support::cases(256))]

        /// Whatever the string, it is written so that it reads back as itself, as a value and
        /// as a key (stream and path names).
        #[test]
        fn any_string_reads_back_as_itself(
            key in "[a-zA-Z0-9_./-]{1,12}",
            value in any::<String>(),
            crlf in any::<bool>(),
        ) {
            prop_assume!(key != "user" && key != "list");
            let eol = if crlf { "\r\n" } else { "\n" };
            let mut d = Document::parse(&format!("streams:{eol}  user: x{eol}")).unwrap();
            d.upsert("streams", &key, &json!(value)).unwrap();
            d.upsert("streams", "list", &json!([value, key])).unwrap();
            let v = read(d.text());
            prop_assert_eq!(&v["streams"][&key], &json!(value));
            prop_assert_eq!(&v["streams"]["list"], &json!([value, key]));
            prop_assert_eq!(d.text().matches('\n').count(), d.text().matches(eol).count());
        }
    }

    proptest! {
        #![proptest_config(crate::test_support::cases(64))]

        #[test]
        fn random_edits_keep_user_bytes_and_converge(
            t in template(),
            ops in proptest::collection::vec(op(), 0..10),
        ) {
            let original = t.text();
            let mut d = Document::parse(&original).unwrap();
            let before = read(&original);
            let mut model: BTreeMap<String, Value> = match &before[t.section] {
                Value::Object(m) => m.clone().into_iter().collect(),
                _ => BTreeMap::new(),
            };
            for op in &ops {
                match op {
                    Op::Upsert(k, v) => {
                        d.upsert(t.section, OWNED[*k], v).unwrap();
                        model.insert(OWNED[*k].to_owned(), v.clone());
                        // Idempotent: the same upsert again changes nothing.
                        let same = d.text().to_owned();
                        d.upsert(t.section, OWNED[*k], v).unwrap();
                        prop_assert_eq!(d.text(), same.as_str());
                    }
                    Op::Remove(k) => {
                        d.remove(t.section, OWNED[*k]).unwrap();
                        model.remove(OWNED[*k]);
                    }
                }
            }
            let text = d.text();

            // Converges: the file reads as the model, the rest of the file as before.
            let after = read(text);
            let section = match &after[t.section] {
                Value::Object(m) => m.clone().into_iter().collect(),
                _ => BTreeMap::new(),
            };
            prop_assert_eq!(&section, &model);
            for (k, v) in before.as_object().into_iter().flatten() {
                if k != t.section {
                    prop_assert_eq!(&after[k], v);
                }
            }
            let mut keys = Document::parse(text).unwrap().keys(t.section);
            keys.sort();
            prop_assert_eq!(keys, model.keys().cloned().collect::<Vec<_>>());

            // Every line of the operator's survives byte for byte, in order.
            let user_lines: Vec<String> = t
                .lines()
                .into_iter()
                .filter(|(_, owned)| !owned)
                .map(|(l, _)| format!("{l}{}", t.eol))
                .collect();
            let lines: Vec<&str> = text.split_inclusive('\n').collect();
            prop_assert!(is_subsequence(&user_lines, &lines), "user lines lost:\n{}", text);

            // With the owned entries taken out of both, the files are identical (up to the
            // section header camsync appended to a file that had none).
            // The same operations as one batch read the same.
            let mut batch = Document::parse(&original).unwrap();
            let changes: Vec<Change<'_>> = ops
                .iter()
                .map(|op| match op {
                    Op::Upsert(k, v) => Change::Upsert(OWNED[*k], v),
                    Op::Remove(k) => Change::Remove(OWNED[*k]),
                })
                .collect();
            batch.apply(t.section, &changes).unwrap();
            prop_assert_eq!(
                without_empty(read(batch.text()), t.section),
                without_empty(read(text), t.section)
            );
            let batch_lines: Vec<&str> = batch.text().split_inclusive('\n').collect();
            prop_assert!(is_subsequence(&user_lines, &batch_lines), "user lines lost:\n{}", batch.text());

            let stripped = strip_owned(text, t.section);
            let original_stripped = strip_owned(&original, t.section);
            let appended = format!("{original_stripped}{}:{}", t.section, t.eol);
            prop_assert!(
                stripped == original_stripped || (matches!(t.shape, Shape::Absent) && stripped == appended),
                "stripped files differ:\n{}\n---\n{}", stripped, original_stripped
            );

            // The line ending is the file's everywhere.
            let crlf_count = text.matches("\r\n").count();
            let lf_count = text.matches('\n').count();
            prop_assert_eq!(crlf_count, if t.eol == "\r\n" { lf_count } else { 0 });
        }
    }
}

/// A template writer's quoting of a scalar, independent of the editor's: JSON strings are valid
/// YAML double-quoted scalars.
fn json_quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}
