namespace Realtime.Bench;

/// <summary>The fixed prose of docs/benchmarks.md: what is measured, how, and with what.</summary>
internal static class BenchContext
{
    public static string Title(string workload) => workload switch
    {
        "W1" => "idle connections on one node (memory per connection)",
        "W2" => "broadcast (one channel, many subscribers)",
        "W3" => "many channels (one subscriber each)",
        "W4" => "reconnect storm",
        "W5" => "fanout router alone",
        "W6" => "replay (catching up missed events)",
        _ => workload,
    };

    public const string Preamble = """
        How to read this: every figure comes from one `./realtime.sh bench --peers` run on this
        2-core machine (a workload run again with its peers says so under Targets missed), where
        the load generator, the system under test and its backbone share the two cores. **Ours** is the whole stack as `./realtime.sh up` starts it: 2 gateways, 1 fanout,
        the embedded Kafka host (librdkafka's mock cluster: real Kafka protocol, in memory) and
        redis-server; every event goes through both Kafka hops (ingress topic, node topic). Ours is
        published to through the gRPC Publisher API over one `PublishStream` call (a run's JSON says
        `publishCall`; runs before change 26 made one `Publish` call per event). CPU per
        million deliveries counts all of those processes; the "servers only" column counts our 2
        gateways alone (for a peer, its 2 server instances alone), so the backbone's share is the
        difference. **Peers** (bench/peers/README.md): ASP.NET Core SignalR with
        Microsoft.AspNetCore.SignalR.StackExchangeRedis, and Socket.IO 4 with @socket.io/redis-adapter,
        each with 2 server instances and its own redis-server, measured by the same generator with
        the same payload. Ratios are ours / peer (below 1 is better for us). A run whose generator
        needed more than 70% of its core is marked invalid. Each run gets a system started afresh
        (ours: the whole stack; a peer: its servers and redis-server), so no run pays for what an
        earlier one left behind, and W2-W4 begin with the same unmeasured warm-up on every system
        (100 clients, 2,000 events, for W4 three reconnects of them), so a measured phase does not
        time the JIT (W5 and W6 warm up their own way). A full W4 run drops every client three
        times and stands for its median storm (change 28); W5 reports the median of three runs per
        node count. Runs named after a change (e.g.
        `W1-realtime-receive-buffer-per-message`) were re-run after that change, against the peers'
        figures of the full run.

        """;

    public const string Epilogue = """
        ## Commands

        - `./realtime.sh bench --peers`: this report (every workload, ours and both peers).
        - `./realtime.sh bench --peers --workload W1`: one workload's full variant, ours and both peers (its results replace that workload's in this report).
        - `./realtime.sh bench --quick`: the smoke run `.ci/run` does (completes and delivers everything; speed is not checked).
        - `./realtime.sh bench --workload W2 --subscribers 2000 --rate 10 --seconds 20`: one run of ours.
        - Results: `bench/results/<date>/*.json`; plots: `docs/benchmarks/*.png`.
        """;
}
