namespace Realtime.Testing;

/// <summary>
/// What <see cref="ManagedProcess.Start(ProcessSpec)"/> runs: an executable, its arguments and
/// environment, and a name for its log file.
/// </summary>
public sealed record ProcessSpec
{
    /// <summary>Short name of the process, used in its log file name and in error messages (e.g. <c>gw-0</c>).</summary>
    public required string Name { get; init; }

    /// <summary>Executable to run: an absolute path or a name looked up on <c>PATH</c>.</summary>
    public required string FileName { get; init; }

    /// <summary>Arguments, passed as they are (no shell quoting is involved).</summary>
    public IReadOnlyList<string> Arguments { get; init; } = [];

    /// <summary>
    /// Changes to the environment the process inherits from the test process: a value sets the
    /// variable, <see langword="null"/> removes it.
    /// </summary>
    public IReadOnlyDictionary<string, string?> Environment { get; init; } = new Dictionary<string, string?>();

    /// <summary>Working directory; <see langword="null"/> for the test process's current directory.</summary>
    public string? WorkingDirectory { get; init; }

    /// <summary>
    /// Runs a framework-dependent .NET application: <c>dotnet &lt;dllPath&gt; &lt;arguments&gt;</c>.
    /// </summary>
    /// <remarks>
    /// The host is the one in <c>DOTNET_HOST_PATH</c> (set by the .NET CLI for the processes it
    /// starts) when that file exists, else <c>dotnet</c> on <c>PATH</c>.
    /// </remarks>
    /// <param name="name">Short name of the process (log file name, error messages).</param>
    /// <param name="dllPath">Full path of the application's dll, e.g. from <see cref="RepoPaths.ProjectOutput"/>.</param>
    /// <param name="environment">Environment changes (null values remove a variable); may be null.</param>
    /// <param name="arguments">Command line arguments after the dll.</param>
    public static ProcessSpec DotnetDll(string name, string dllPath, IReadOnlyDictionary<string, string?>? environment = null, params string[] arguments)
    {
        ArgumentException.ThrowIfNullOrEmpty(dllPath);
        return new ProcessSpec
        {
            Name = name,
            FileName = DotnetHost(),
            Arguments = [dllPath, .. arguments],
            Environment = environment ?? new Dictionary<string, string?>(),
            WorkingDirectory = Path.GetDirectoryName(dllPath),
        };
    }

    /// <summary>The <c>dotnet</c> host: <c>DOTNET_HOST_PATH</c> when set and present, else <c>dotnet</c> (from <c>PATH</c>).</summary>
    public static string DotnetHost()
    {
        var host = System.Environment.GetEnvironmentVariable("DOTNET_HOST_PATH");
        return !string.IsNullOrEmpty(host) && File.Exists(host) ? host : "dotnet";
    }
}
