//! docs/openapi.json is the published contract: it must be exactly what the code generates,
//! so a change to a route, a DTO or a problem shows up in review as a change to that file.

#[test]
fn the_committed_openapi_document_is_what_the_code_generates() {
    let generated = api::http::openapi()
        .to_pretty_json()
        .expect("the document serialises")
        + "\n";
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json differs from the generated document; regenerate it with \
         `cargo run -p api -- openapi > docs/openapi.json` and review the diff"
    );
}

#[test]
fn every_route_is_documented_with_its_problems() {
    let doc = api::http::openapi();
    let paths: Vec<&str> = doc.paths.paths.keys().map(String::as_str).collect();
    for route in [
        "/v1/devices",
        "/v1/devices/{id}",
        "/v1/devices/{id}/history",
        "/v1/devices/{id}/decommission",
        "/v1/devices/{id}/certificate:renew",
        "/v1/events",
        "/livez",
        "/readyz",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(paths.contains(&route), "{route} is missing from {paths:?}");
    }
    let json = serde_json::to_value(&doc).unwrap();
    assert_eq!(json["openapi"], "3.1.0");
    let register = &json["paths"]["/v1/devices"]["post"]["responses"];
    for status in [
        "202", "400", "401", "403", "409", "413", "415", "422", "429", "503", "504",
    ] {
        assert!(
            register.get(status).is_some(),
            "POST /v1/devices lacks {status}"
        );
    }
    assert_eq!(
        register["409"]["content"]["application/problem+json"]["schema"]["$ref"],
        "#/components/schemas/Problem"
    );
    assert!(json["components"]["securitySchemes"]["bearer"].is_object());
}
