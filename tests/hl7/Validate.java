// The HL7 FHIR R4B instance validator (HAPI FHIR), offline, for many files in one JVM.
//
// Dev tooling for the test suite (tests/hl7/validator.py fetches the jars, compiles and runs this).
// Protocol: one file path per line on stdin; for each, one JSON line on stdout:
//   {"file": "...", "issues": [{"severity": "...", "location": "...", "message": "...",
//                               "messageId": "...", "line": N, "col": N}, ...]}
// Before the first request is read, one line {"ready": true, ...} says the validator is warm
// (a tiny Bundle was validated, so structure definitions and caches are loaded).
// Validation support: the core R4B definitions, in-memory terminology (value sets and code
// systems shipped with the jars: FHIR, v2, v3), the common code systems (UCUM, languages,
// mime types, countries) and snapshot generation. No remote terminology server: a code system
// the validator does not know (SNOMED CT, LOINC, DICOM) is a warning, not an error.
// With "--threads N", N files are validated at a time (FhirValidator is thread-safe); the
// answers then come in completion order, each naming its file.

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.DefaultProfileValidationSupport;
import ca.uhn.fhir.validation.FhirValidator;
import ca.uhn.fhir.validation.SingleValidationMessage;
import ca.uhn.fhir.validation.ValidationResult;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.hl7.fhir.common.hapi.validation.support.CommonCodeSystemsTerminologyService;
import org.hl7.fhir.common.hapi.validation.support.InMemoryTerminologyServerValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.SnapshotGeneratingValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.ValidationSupportChain;
import org.hl7.fhir.common.hapi.validation.validator.FhirInstanceValidator;

public final class Validate {
  private static final String WARM_UP =
      "{\"resourceType\":\"Bundle\",\"type\":\"transaction\",\"entry\":[{\"fullUrl\":"
          + "\"urn:uuid:0b7f1f4e-1d2a-4c3b-9e8f-1a2b3c4d5e6f\",\"resource\":{\"resourceType\":"
          + "\"Patient\",\"id\":\"0b7f1f4e-1d2a-4c3b-9e8f-1a2b3c4d5e6f\",\"gender\":\"other\"},"
          + "\"request\":{\"method\":\"PUT\",\"url\":"
          + "\"Patient/0b7f1f4e-1d2a-4c3b-9e8f-1a2b3c4d5e6f\"}}]}";

  private Validate() {}

  public static void main(String[] args) throws Exception {
    int threads = 1;
    for (int i = 0; i < args.length; i++) {
      if (args[i].equals("--threads") && i + 1 < args.length) {
        threads = Math.max(1, Integer.parseInt(args[++i]));
      } else {
        System.err.println("usage: Validate [--threads N] < paths");
        System.exit(2);
      }
    }
    long start = System.nanoTime();
    PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
    FhirValidator validator = newValidator();
    validator.validateWithResult(WARM_UP);
    long startupMs = (System.nanoTime() - start) / 1_000_000;
    out.println("{\"ready\":true,\"fhirVersion\":\"R4B\",\"hapi\":"
        + quote(ca.uhn.fhir.util.VersionUtil.getVersion()) + ",\"startup_ms\":" + startupMs
        + ",\"threads\":" + threads + "}");
    out.flush();

    ExecutorService pool = threads > 1 ? Executors.newFixedThreadPool(threads) : null;
    BufferedReader in =
        new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    String line;
    while ((line = in.readLine()) != null) {
      String file = line.strip();
      if (file.isEmpty()) {
        continue;
      }
      if (pool == null) {
        answer(out, file, validator);
      } else {
        pool.submit(() -> answer(out, file, validator));
      }
    }
    if (pool != null) {
      pool.shutdown();
      pool.awaitTermination(1, TimeUnit.HOURS);
    }
    out.flush();
  }

  private static FhirValidator newValidator() {
    FhirContext ctx = FhirContext.forR4B();
    // No RemoteTerminologyServiceValidationSupport: nothing leaves the machine. A code system none of
    // these knows is reported as a warning by HAPI 8 itself ("CodeSystem is unknown and can't be
    // validated", "codeSystem 'http://snomed.info/sct' ... is not supported"); the deprecated
    // UnknownCodeSystemWarningValidationSupport is not needed for that (checked: same findings).
    ValidationSupportChain chain = new ValidationSupportChain(
        new DefaultProfileValidationSupport(ctx),
        new InMemoryTerminologyServerValidationSupport(ctx),
        new CommonCodeSystemsTerminologyService(ctx),
        new SnapshotGeneratingValidationSupport(ctx));
    FhirInstanceValidator module = new FhirInstanceValidator(chain);
    module.setAnyExtensionsAllowed(true); // MII extensions are unknown offline: information only
    module.setErrorForUnknownProfiles(false); // MII/fhir.de meta.profile: a warning, not an error
    FhirValidator validator = ctx.newValidator();
    validator.registerValidatorModule(module);
    return validator;
  }

  private static void answer(PrintStream out, String file, FhirValidator validator) {
    StringBuilder json = new StringBuilder(256);
    json.append("{\"file\":").append(quote(file)).append(",\"issues\":[");
    try {
      String text = Files.readString(Path.of(file), StandardCharsets.UTF_8);
      ValidationResult result = validator.validateWithResult(text);
      boolean first = true;
      for (SingleValidationMessage m : result.getMessages()) {
        if (!first) {
          json.append(',');
        }
        first = false;
        json.append("{\"severity\":").append(quote(m.getSeverity().getCode()))
            .append(",\"location\":").append(quote(m.getLocationString()))
            .append(",\"message\":").append(quote(m.getMessage()))
            .append(",\"messageId\":").append(quote(m.getMessageId()))
            .append(",\"line\":").append(m.getLocationLine())
            .append(",\"col\":").append(m.getLocationCol())
            .append('}');
      }
    } catch (Throwable e) { // the answer must come: a crash is a fatal issue of this file
      json.append("{\"severity\":\"fatal\",\"location\":\"\",\"message\":")
          .append(quote("validator crashed: " + e))
          .append(",\"messageId\":\"VALIDATOR_CRASH\",\"line\":null,\"col\":null}");
    }
    json.append("]}");
    synchronized (out) {
      out.println(json);
      out.flush();
    }
  }

  private static String quote(String s) {
    if (s == null) {
      return "null";
    }
    StringBuilder b = new StringBuilder(s.length() + 2).append('"');
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      switch (c) {
        case '"' -> b.append("\\\"");
        case '\\' -> b.append("\\\\");
        case '\n' -> b.append("\\n");
        case '\r' -> b.append("\\r");
        case '\t' -> b.append("\\t");
        default -> {
          if (c < 0x20) {
            b.append(String.format("\\u%04x", (int) c));
          } else {
            b.append(c);
          }
        }
      }
    }
    return b.append('"').toString();
  }
}
