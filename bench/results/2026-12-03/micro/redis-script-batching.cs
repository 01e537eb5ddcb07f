// Measured 2026-12-03 (docs/benchmarks.md, Found on the way): client CPU per Lua script call when
// 2,000 calls at a time come from thread-pool items (direct) or go out as one IBatch (batch).
// Console project, net10.0, PackageReference StackExchange.Redis 3.4.35; redis-server --port 6399.
// dotnet run -c Release -- direct|batch 2000 20   (strace -f -c -e trace=sendto,futex counts the sends)
using System.Diagnostics;
using StackExchange.Redis;
var mode = args[0]; var n = int.Parse(args[1]); var rounds = int.Parse(args[2]);
var port = args.Length > 3 ? args[3] : "6399";
var mux = await ConnectionMultiplexer.ConnectAsync($"127.0.0.1:{port}");
var db = mux.GetDatabase();
const string script = "redis.call('HINCRBY', KEYS[1], ARGV[1], 1) return 1";
await db.ScriptEvaluateAsync(script, ["k0"], ["a"]);
for (var w = 0; w < 2; w++) await Run();
var cpu0 = Process.GetCurrentProcess().TotalProcessorTime; var sw = Stopwatch.StartNew();
for (var r = 0; r < rounds; r++) await Run();
var cpu = Process.GetCurrentProcess().TotalProcessorTime - cpu0;
Console.WriteLine($"{mode}: {n*rounds} calls, {sw.Elapsed.TotalMilliseconds:F0} ms, client CPU {cpu.TotalMilliseconds:F0} ms = {cpu.TotalMicroseconds/(n*rounds):F2} us/call");
async Task Run() {
  var tasks = new Task[n];
  if (mode == "direct") {
    // as from many handshakes: each on its own thread-pool item
    for (var i = 0; i < n; i++) { var k = i; tasks[i] = Task.Run(() => db.ScriptEvaluateAsync(script, [$"u{k}"], ["gw"])); }
  } else {
    var b = db.CreateBatch();
    for (var i = 0; i < n; i++) tasks[i] = b.ScriptEvaluateAsync(script, [$"u{i}"], ["gw"]);
    b.Execute();
  }
  await Task.WhenAll(tasks);
}
