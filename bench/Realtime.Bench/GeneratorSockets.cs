namespace Realtime.Bench;

/// <summary>
/// How the generator's sockets complete. By default .NET on Linux hands every socket completion
/// from its epoll thread to the thread pool; at 50,000 deliveries a second that hand-off (a
/// thread-pool wake-up, a context switch, the pool's spinning between bursts) was most of the
/// generator's CPU (perf of a W2 5000 x 10/s run: 26% of its samples in the hypervisor's
/// interrupt-enable on context switches and syscalls, 8% in the pool's semaphore spin) and kept
/// it above the 70% limit, which made every target's W2 runs at 10 events/s and more invalid.
/// The generator's handlers are a histogram record and a ledger update, so they run on the epoll
/// thread itself (<c>DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1</c>). This is the generator's
/// setting only: the systems under test keep their own defaults.
/// </summary>
internal static class GeneratorSockets
{
    private const string Variable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    /// <summary>What the results record: <c>inline</c> or <c>thread-pool</c>.</summary>
    public static string Mode => Environment.GetEnvironmentVariable(Variable) == "1" ? "inline" : "thread-pool";

    /// <summary>
    /// Turns inline completions on unless the caller set the variable (<c>0</c> measures the
    /// default). The runtime reads it when the first socket is made, so this runs before any.
    /// </summary>
    public static void CompleteInline()
    {
        if (Environment.GetEnvironmentVariable(Variable) is null)
        {
            Environment.SetEnvironmentVariable(Variable, "1");
        }
    }
}
