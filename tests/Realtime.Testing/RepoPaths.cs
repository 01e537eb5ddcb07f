namespace Realtime.Testing;

/// <summary>
/// Paths inside the repository checkout the tests run from.
/// </summary>
public static class RepoPaths
{
    /// <summary>File name that marks the repository root.</summary>
    public const string SolutionFileName = "Realtime.Pipeline.sln";

    private static readonly Lazy<string> LazyRoot = new(FindRoot);
    private static readonly Lazy<(string Configuration, string TargetFramework)> LazyBuild = new(FindBuild);

    /// <summary>The directory that contains <c>Realtime.Pipeline.sln</c>, found by walking up from <see cref="AppContext.BaseDirectory"/>.</summary>
    /// <exception cref="InvalidOperationException">The tests do not run from inside a checkout.</exception>
    public static string Root => LazyRoot.Value;

    /// <summary>
    /// The build configuration (<c>Debug</c>, <c>Release</c>...) the running test assembly was built
    /// with, read from its output path (<c>bin/&lt;Configuration&gt;/&lt;tfm&gt;/</c>).
    /// </summary>
    public static string Configuration => LazyBuild.Value.Configuration;

    /// <summary>The target framework folder of the running test assembly (e.g. <c>net10.0</c>).</summary>
    public static string TargetFramework => LazyBuild.Value.TargetFramework;

    /// <summary><c>&lt;Root&gt;/TestResults</c>: where test reports and process logs go (ignored by git).</summary>
    public static string TestResults => Path.Combine(Root, "TestResults");

    /// <summary><c>&lt;Root&gt;/TestResults/logs</c>: one log file per process a test started.</summary>
    public static string Logs => Path.Combine(TestResults, "logs");

    /// <summary>
    /// Full path of a project's build output, built with the same configuration and target
    /// framework as the running test assembly: <c>&lt;Root&gt;/&lt;projectDir&gt;/bin/&lt;Configuration&gt;/&lt;tfm&gt;/&lt;assemblyFileName&gt;</c>.
    /// </summary>
    /// <param name="projectDir">Project directory relative to the root, e.g. <c>src/Gateway</c>.</param>
    /// <param name="assemblyFileName">File name of the output, e.g. <c>Realtime.Gateway.dll</c>.</param>
    /// <exception cref="FileNotFoundException">The project has not been built in that configuration.</exception>
    public static string ProjectOutput(string projectDir, string assemblyFileName)
    {
        ArgumentException.ThrowIfNullOrEmpty(projectDir);
        ArgumentException.ThrowIfNullOrEmpty(assemblyFileName);

        var path = Path.GetFullPath(Path.Combine(Root, projectDir, "bin", Configuration, TargetFramework, assemblyFileName));
        if (!File.Exists(path))
        {
            throw new FileNotFoundException(
                $"{assemblyFileName} was not found at {path}. Build {projectDir} in {Configuration} first: " +
                $"dotnet build {projectDir} -c {Configuration} (or build Realtime.Pipeline.sln -c {Configuration}).",
                path);
        }

        return path;
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, SolutionFileName)))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException(
            $"No {SolutionFileName} found in {AppContext.BaseDirectory} or any directory above it: the tests must run from a checkout of the repository.");
    }

    private static (string Configuration, string TargetFramework) FindBuild()
    {
        // .../<project>/bin/<Configuration>/<tfm>/ (the last "bin" segment wins).
        var segments = AppContext.BaseDirectory.Split(
            [Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar], StringSplitOptions.RemoveEmptyEntries);
        var bin = Array.LastIndexOf(segments, "bin");
        if (bin >= 0 && bin + 2 < segments.Length)
        {
            return (segments[bin + 1], segments[bin + 2]);
        }

#if DEBUG
        const string Fallback = "Debug";
#else
        const string Fallback = "Release";
#endif
        return (Fallback, $"net{Environment.Version.Major}.{Environment.Version.Minor}");
    }
}
