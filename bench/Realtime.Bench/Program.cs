using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Realtime.Bench;
using Realtime.Bench.Targets;
using Realtime.Bench.Workloads;
using Realtime.Hosting;

// Realtime Pipeline load generator. Loopback only; every run is bounded by its parameters and a
// deadline, and stops by itself. Runs against a system someone else started: ours as
// `./realtime.sh up` starts it (fixed ports), or a peer (bench/peers).
//
//   dotnet Realtime.Bench.dll --workload W2|W6 [--target realtime] [--quick] [--subscribers N --rate R --seconds S]
//                             --key-file .run/dev-signing-key --out bench/results/<date>
//   dotnet Realtime.Bench.dll --report bench/results/<date> --doc docs/benchmarks.md
var options = Args.Parse(args);
GeneratorSockets.CompleteInline();
if (options.Get("report") is { } reportDir)
{
    await BenchReport.WriteAsync(reportDir, options.Get("doc") ?? Path.Combine("docs", "benchmarks.md"));
    return 0;
}

var quick = options.Flag("quick");
var workload = options.Get("workload") ?? "W2";
var key = File.ReadAllText(options.Get("key-file") ?? ".run/dev-signing-key").Trim();
var outDir = options.Get("out") ?? Path.Combine("bench", "results", DateTime.UtcNow.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture));
Directory.CreateDirectory(outDir);
string TokenFor(string subject) => DevTokens.Mint(key, subject, ["*"], TimeSpan.FromHours(2), "realtime-dev", "realtime");
int Int(string name, int quickValue, int fullValue) => int.Parse(options.Get(name) ?? (quick ? quickValue : fullValue).ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
using var deadline = new CancellationTokenSource(TimeSpan.FromMinutes(quick ? 3 : 20));

// --publish-call unary: ours publishes with one gRPC Publish call per event instead of one PublishStream (change 26's before).
var unaryPublish = options.Get("publish-call") == "unary";
await using IBenchTarget target = Targets.Create(options.Get("target") ?? "realtime", TokenFor, options.Get("peer-run-dir") ?? Path.Combine(".run", "peers"), unaryPublish);
var result = workload switch
{
    "W2" => await Broadcast.RunAsync(target, Int("subscribers", 200, 5000), Int("rate", 20, 10), TimeSpan.FromSeconds(Int("seconds", 10, 30)), deadline.Token),
    "W1" => await Idle.RunAsync(target, quick ? [500, 1000] : [10_000, 19_000], TimeSpan.FromSeconds(quick ? 3 : 20), deadline.Token),
    "W3" => await ManyChannels.RunAsync(target, Int("channels", 200, 10_000), Int("rate", 200, 1000), TimeSpan.FromSeconds(Int("seconds", 5, 20)), deadline.Token),
    "W4" => await ReconnectStorm.RunAsync(target, Int("clients", 200, 5000), Int("rate", 10, 10), TimeSpan.FromSeconds(Int("seconds", 9, 30)), Int("storms", 1, 3), deadline.Token),
    "W5" => await Router.RunAsync(options, quick, deadline.Token),
    "W6" => await Replay.RunAsync(TokenFor("bench-replay"), quick ? 2_000 : 10_000, warmUp: !quick, deadline.Token),
    _ => throw new ArgumentException($"unknown workload {workload} (W1-W6)"),
};
result["quick"] = quick;
result["generatorSocketCompletions"] = GeneratorSockets.Mode;
if (target is RealtimeTarget)
{
    result["publishCall"] = unaryPublish ? "unary" : "stream";
}

var name = options.Get("name") ?? $"{workload}-{target.Name}{(quick ? "-quick" : string.Empty)}";
var path = Path.Combine(outDir, $"{name}.json");
await File.WriteAllTextAsync(path, result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
Console.WriteLine(result.ToJsonString());
Console.WriteLine($"written {path}");
// Success means the run completed and, for our system, delivered everything: losing nothing is what
// it promises. A peer's loss (W4: SignalR and Socket.IO have no positions to resume from) is a
// measured result, in the report. Speed is reported, never asserted.
return target is RealtimeTarget && (long?)result["lost"] is not (0 or null) ? 1 : 0;
