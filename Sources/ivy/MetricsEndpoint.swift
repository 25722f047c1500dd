// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Ivy
import IvyHTTP

/// `ivy worker --metrics ADDRESS`: the worker's Prometheus endpoint, `GET /metrics`.
enum MetricsEndpoint {
    static let help = """
          --metrics ADDRESS  serve Prometheus metrics at http://ADDRESS/metrics (HOST:PORT,
                             [IPV6]:PORT; port 0 picks one, printed at start), e.g. 127.0.0.1:9464
        """

    /// The address `--metrics` names, if given.
    static func address(_ arguments: inout CommandLineArguments) throws -> ListenAddress? {
        guard let text = try arguments.option("--metrics") else { return nil }
        do { return try ListenAddress(text) } catch {
            throw CommandLineArguments.UsageError(
                description: "--metrics takes HOST:PORT or [IPV6]:PORT with a numeric address, got \(text)")
        }
    }

    /// Serves `worker`'s metrics on `address` until stopped.
    static func start(for worker: IvyWorker, on address: ListenAddress) throws -> HTTPServer {
        let server = try HTTPServer(listeningOn: address) { request in
            guard request.path == "/metrics" else { return .error(404, "only /metrics here") }
            guard request.method == "GET" || request.method == "HEAD" else {
                return HTTPResponse(status: 405, headers: [("Allow", "GET, HEAD")], body: [])
            }
            return HTTPResponse(contentType: PrometheusText.contentType, await worker.prometheusText())
        }
        Console.error("ivy worker: metrics on http://\(server.address)/metrics")
        if !server.address.isLoopback {
            Console.error("ivy worker: note: the metrics listen beyond this machine (task and queue names)")
        }
        return server
    }
}
