// Measured 2026-12-03 (docs/benchmarks.md, Found on the way): CPU per WebSocketException that
// propagates through four awaits, as an aborted connection's read does. Console project, net10.0.
using System.Diagnostics;
using System.Net.WebSockets;
static async Task L0(TaskCompletionSource t) { await t.Task; }
static async Task L1(TaskCompletionSource t) { await L0(t); }
static async Task L2(TaskCompletionSource t) { await L1(t); }
static async Task L3(TaskCompletionSource t) { try { await L2(t); } catch (WebSocketException) { } }
for (int round = 0; round < 3; round++) {
  var n = 20000; var cpu0 = Process.GetCurrentProcess().TotalProcessorTime;
  for (int i = 0; i < n; i++) { var t = new TaskCompletionSource(); var x = L3(t); t.SetException(new WebSocketException(WebSocketError.ConnectionClosedPrematurely)); await x; }
  var cpu = Process.GetCurrentProcess().TotalProcessorTime - cpu0;
  Console.WriteLine($"{cpu.TotalMicroseconds / n:F1} us per exception through 4 awaits");
}
