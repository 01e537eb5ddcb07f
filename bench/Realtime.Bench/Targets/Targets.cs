namespace Realtime.Bench.Targets;

/// <summary>The systems the generator can measure, by name.</summary>
internal static class Targets
{
    public static IBenchTarget Create(string name, Func<string, string> tokenFor) => name switch
    {
        "realtime" => new RealtimeTarget(tokenFor),
        _ => throw new ArgumentException($"unknown target {name} (realtime)"),
    };
}
