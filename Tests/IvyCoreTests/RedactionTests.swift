// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import IvyCore
import Testing

/// Credentials, in the user part or in query items such as `password`, never survive
/// `Redaction.redact(url:)`; other query values print as they are.
struct RedactionTests {
    @Test(arguments: [
        ("redis://app:s3cret@host:6379/0", "redis://***@host:6379/0"),
        ("redis://:s3cret@127.0.0.1:6390", "redis://***@127.0.0.1:6390"),
        ("redis://app@host", "redis://***@host"),
        ("rediss://app:s3cret@host:6380/2?timeout=5", "rediss://***@host:6380/2?timeout=5"),
        ("amqp://guest:s3cret@mq.local:5672/jobs", "amqp://***@mq.local:5672/jobs"),
        (
            "ironmq://TOKEN1234@mq-aws-us-east-1.iron.io/PROJECT",
            "ironmq://***@mq-aws-us-east-1.iron.io/PROJECT"
        ),
        ("ironmq://s3cret@mq.iron.io", "ironmq://***@mq.iron.io"),
        ("redis://app:p@ss@host:6379", "redis://***@host:6379"),
        ("redis://app:s%2F3cret%40x@host", "redis://***@host"),
        ("http://app:s3cret@host#frag", "http://***@host#frag"),
        ("redis://app:s3cret@[::1]:6379/0", "redis://***@[::1]:6379/0"),
    ])
    func credentialsAreMasked(_ url: String, _ expected: String) {
        #expect(Redaction.redact(url: url) == expected)
    }

    @Test(arguments: [
        "redis://host:6379/0", "redis://127.0.0.1:6390", "amqp://mq.local/jobs", "memory://",
        "memory://local", "not a url", "",
    ])
    func textWithoutCredentialsIsUnchanged(_ url: String) {
        #expect(Redaction.redact(url: url) == url)
    }

    @Test(arguments: [
        ("https://host/x?token=abc", "https://host/x?token=***"),
        ("https://host/x?token=abc&flag&key=v", "https://host/x?token=***&flag&key=***"),
        ("redis://host?password=s3cret&db=2", "redis://host?password=***&db=2"),
        ("https://host/x?a=1=2&Pass=1=2", "https://host/x?a=1=2&Pass=***"),
        ("https://host/x?", "https://host/x?"),
        ("https://u:p@host/x?k=v", "https://***@host/x?k=v"),
        (
            "https://host/x?API-Key=v&access_token=t&X-Amz-Signature=s&sig=s",
            "https://host/x?API-Key=***&access_token=***&X-Amz-Signature=***&sig=***"
        ),
        (
            "https://host/x?pass%77ord=v&pwd=v&client_secret=v&auth=v",
            "https://host/x?pass%77ord=***&pwd=***&client_secret=***&auth=***"
        ),
        ("https://host/x?token=abc#frag", "https://host/x?token=***#frag"),
    ])
    func secretQueryValuesAreMasked(_ url: String, _ expected: String) {
        #expect(Redaction.redact(url: url) == expected)
    }

    @Test(arguments: [
        ("redis://app:s3cret@host:6379/0", "s3cret"),
        ("redis://app:s3cret@host:6379/0?password=s3cret", "s3cret"),
        ("ironmq://T0KEN-abc@mq.iron.io/PROJECT", "T0KEN-abc"),
        ("amqp://u:s3cret@mq/jobs?x=1&token=s3cret#frag", "s3cret"),
        ("redis://app:s3@cret@host", "s3@cret"),
        ("redis://app:s3cret@host?auth=s3cret", "s3cret"),
        ("https://host/path?api_key=s3cret&b=1", "s3cret"),
    ])
    func secretNeverAppears(_ url: String, _ secret: String) {
        let redacted = Redaction.redact(url: url)
        #expect(!redacted.contains(secret), "\(redacted)")
        #expect(redacted.contains("***"))
    }

    /// Settings are no secrets: `?retain_results=60` must print as it is, or operators cannot
    /// tell which configuration runs.
    @Test(arguments: [
        "redis://127.0.0.1:6390?retain_results=60",
        "redis://127.0.0.1:6390/0?retain_results=2.5&name=worker-1",
        "unix:///run/redis.sock?db=2", "https://host/x?timeout=5&flag&a=1",
    ])
    func settingsInTheQueryAreShown(_ url: String) {
        #expect(Redaction.redact(url: url) == url)
    }

    @Test func onlyTheCredentialsGoWhenSettingsComeWithThem() {
        #expect(
            Redaction.redact(url: "redis://:s3cret@127.0.0.1:6390?retain_results=60&password=s3cret")
                == "redis://***@127.0.0.1:6390?retain_results=60&password=***")
    }

    @Test func redactionIsIdempotent() {
        for url in ["redis://app:s3cret@host:6379/0?x=1", "ironmq://TOKEN@host/PROJECT", "memory://"] {
            let once = Redaction.redact(url: url)
            #expect(Redaction.redact(url: once) == once)
        }
    }

    /// Text that fails URL parsing is exactly what `BackendURL` echoes in `.invalidURL` errors:
    /// without `://`, or with a raw `/`, `?` or `#` in the password, the secret must still go.
    @Test(arguments: [
        "redis:/app:s3cret@host:6379", "app:s3cret@host:6379", "redis//app:s3cret@host",
        "redis://app:s3cret/x@host",
        "redis://app:s3cret#x@host", "redis://app:s3cret?x@host",
    ])
    func malformedURLsStillHideTheSecret(_ url: String) {
        #expect(!Redaction.redact(url: url).contains("s3cret"), "\(Redaction.redact(url: url))")
    }
}
